"""Start-up code of every Python process of the paper rehearsal (tests/test_paper_rehearsal.py
puts this folder on their PYTHONPATH): torchvision's CIFAR classes check their files
against the fixture's MD5s instead of the published ones.

torchvision refuses CIFAR files whose MD5 is not that of the published file, which a
rehearsal's tiny files cannot have. So, when ``FTI_REHEARSAL_CIFAR_MD5`` holds the
fixture's MD5s (JSON: class name -> file name -> MD5, from tests/paper_fixture.py), the
reference checksums of ``torchvision.datasets.cifar`` are replaced by them as the module is
imported; its integrity check, download logic and reading run unchanged, on the fixture's
files. The module is patched when first imported, so processes that never read a dataset
do not pay for importing torchvision.
"""

import importlib.abc
import importlib.machinery
import json
import os
import sys

CIFAR_MODULE = "torchvision.datasets.cifar"


class FixtureChecksums(importlib.abc.MetaPathFinder):
    def __init__(self, checksums: dict[str, dict[str, str]]):
        self.checksums = checksums

    def find_spec(self, name, path, target=None):
        if name != CIFAR_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            for class_name, md5 in self.checksums.items():
                cls = getattr(module, class_name)
                cls.train_list = [[file, md5[file]] for file, _ in cls.train_list]
                cls.test_list = [[file, md5[file]] for file, _ in cls.test_list]
                cls.meta = {**cls.meta, "md5": md5[cls.meta["filename"]]}

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("FTI_REHEARSAL_CIFAR_MD5"):
    sys.meta_path.insert(0, FixtureChecksums(json.loads(os.environ["FTI_REHEARSAL_CIFAR_MD5"])))
