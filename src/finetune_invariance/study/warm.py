"""A warm interpreter for the workflow's torch jobs when Snakemake runs them locally.

A job that uses a model spends about six seconds importing torch, torchvision and timm
before its first useful line, more than the whole job's work at the miniature study's
scale. With config ``warm_interpreter: true`` the Snakefile starts one server process
(:func:`start`) that imports them once; each torch job's script hands itself to the
server (:func:`run_warm`, its first line), which forks a child that runs the script with
the job's working directory, environment, threads, stdin, stdout and stderr, and reports
its exit status back. The job's inputs, outputs, log and numbers are what a fresh
interpreter gives; only the imports are shared.

Where no server answers (a cluster node, a dry-run, the server not ready yet) the script
simply runs in its own interpreter. Killing a job kills its child; the server exits with
the Snakemake process that started it. Snakemake's ``benchmark:`` files then record a
job's wall time, but not its child's CPU time or memory.
"""

from __future__ import annotations

import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path

#: The server's socket, relative to the workflow's working directory.
SOCKET = Path(".snakemake/finetune_invariance/warm.sock")
#: Set in a child of the server, so that the script runs there instead of handing itself over.
INSIDE = "FINETUNE_INVARIANCE_WARM_CHILD"
#: Modules the server imports before it answers: what the torch jobs import.
PRELOAD = (
    "snakemake.script",
    "snakemake.logging",
    "snakemake.iocontainers",
    "torch",
    "timm",
    "pandas",
    "pyarrow.parquet",
    "scipy.stats",
    "matplotlib.pyplot",
    "seaborn",
    "finetune_invariance.stir",
    "finetune_invariance.monitor",
    "finetune_invariance.study.data",
    "finetune_invariance.study.models",
    "finetune_invariance.study.training",
    "finetune_invariance.study.robust_accuracy",
    "finetune_invariance.study.figures",
)
_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to about 108 bytes


def start(workdir: str | os.PathLike = ".") -> subprocess.Popen | None:
    """Start the server for the workflow in ``workdir`` without waiting for it: jobs that
    begin before it is ready run in their own interpreters. None where the socket's path
    would be too long for a Unix socket."""
    path = (Path(workdir) / SOCKET).resolve()
    if len(str(path)) > _MAX_SOCKET_PATH:
        print(f"warm interpreter not started: its socket's path {path} is too long for a Unix socket", file=sys.stderr)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    command = [sys.executable, "-m", "finetune_invariance.study.warm", str(path), str(os.getpid())]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)


def stop(server: subprocess.Popen | None, workdir: str | os.PathLike = ".") -> None:
    """Stop the server (its running children are killed) and remove its socket."""
    if server is not None:
        server.terminate()
        server.wait()
    (Path(workdir) / SOCKET).unlink(missing_ok=True)


def run_warm(script: str | os.PathLike) -> None:
    """Hand the running job script to the workflow's warm interpreter and exit with its
    status; return (and run here) where none answers or inside the server's child."""
    status = _delegate(Path(script))
    if status is not None:
        sys.exit(status)


def _delegate(script: Path) -> int | None:
    if os.environ.get(INSIDE) or not SOCKET.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(SOCKET))
    except OSError:  # a stale socket of a server that has gone
        return None
    request = {"script": str(script.resolve()), "cwd": os.getcwd(), "env": dict(os.environ)}
    socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
    # Killed by Snakemake: closing the connection makes the server kill the child.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: os._exit(128 + signum))
    reply = connection.makefile("rb").readline()
    return int(reply) if reply else 1


# --- the server ---------------------------------------------------------------------------


def serve(path: Path, parent: int) -> None:
    """Import :data:`PRELOAD`, then answer jobs on ``path`` until ``parent`` is gone."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ready = path.with_name(path.name + ".starting")
    ready.unlink(missing_ok=True)
    listener.bind(str(ready))
    listener.listen(64)
    os.replace(ready, path)  # the socket appears only once the imports are done
    children: dict[int, socket.socket | None] = {}  # child -> its client's connection, None once gone
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    signal.signal(signal.SIGTERM, lambda signum, frame: _shut_down(children, path))
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener:
                connection, _ = listener.accept()
                pid = _fork_job(connection, listener)
                children[pid] = connection
                selector.register(connection, selectors.EVENT_READ, pid)
            else:  # the client closed its connection before its child finished: it was killed
                _close(selector, key.fileobj)
                children[key.data] = None
                _kill(key.data)
        for pid, connection in list(children.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                del children[pid]
                if connection is not None:
                    try:
                        connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                    except OSError:
                        pass
                    _close(selector, connection)
    _shut_down(children, path)


def _close(selector: selectors.BaseSelector, connection: socket.socket) -> None:
    selector.unregister(connection)
    connection.close()


def _fork_job(connection: socket.socket, listener: socket.socket) -> int:
    """Read a job request with the client's stdin/stdout/stderr and fork its child."""
    message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    while not message.endswith(b"\n"):
        message += connection.recv(1 << 20)
    request = json.loads(message)
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    listener.close()
    connection.close()
    status = 1
    try:
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], **{INSIDE: "1"})
        import torch

        # A fresh interpreter reads the job's thread count from OMP_NUM_THREADS at start.
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        sys.argv = [request["script"]]
        runpy.run_path(request["script"], run_name="__main__")
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _shut_down(children: dict[int, socket.socket | None], path: Path) -> None:
    for pid in children:
        _kill(pid)
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    path.unlink(missing_ok=True)
    os._exit(0)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
