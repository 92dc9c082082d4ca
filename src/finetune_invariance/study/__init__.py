"""The study of the paper, built on the metrics library: data, models, training,
robustness, the analyses of the paper's figures and tables, and the claims report.

The Snakemake workflow (``Snakefile``, ``workflow/``) wires files to these modules. Each
module imports only library modules and the study modules listed before it:

- :mod:`.vocabulary`: what a run is, the key columns of the study's tables, shared names;
- :mod:`.statistics`: Pearson's r with undefined cases, Bonferroni;
- :mod:`.flow_statistics`: where an invariance-flow matrix shows compression or expansion;
- :mod:`.synthetic`: the embedded study's generated datasets (the glyph world of the scale model);
- :mod:`.catalog`: what is known about each dataset without loading it;
- :mod:`.corruptions`: CIFAR-C-style corruptions for datasets without a published set;
- :mod:`.cifar_c`: the corrupted test samples, published or generated;
- :mod:`.tables`: the study's table schemas;
- :mod:`.layout`: every artifact's path pattern;
- :mod:`.paper`: the paper's numbers and named hypotheses;
- :mod:`.control_plan`: the planted-effect controls a study runs and where their changes sit;
- :mod:`.design`: the runs, checkpoints, seeds and job settings of a config;
- :mod:`.config`: checks of a config beyond its schema;
- :mod:`.slurm_site`: the SLURM profile's site values, checked before anything is submitted;
- :mod:`.runtime`: a workflow job's log, device, and publishing of its outputs;
- :mod:`.results_folder`: one configuration per results folder, its published checkpoints intact;
- :mod:`.measured_costs`: the GPU costs measured so far, with device and date;
- :mod:`.warm`: the warm interpreter that runs local jobs without their imports;
- :mod:`.checkpoints`: the checkpoint file format;
- :mod:`.models`: the timm ViT with its task head;
- :mod:`.launch_plan`: a config's jobs, GPU-hours, disk and downloads, before it runs;
- :mod:`.data`: loading the datasets and their augmentations;
- :mod:`.history`: a run's training history and its best epoch;
- :mod:`.evaluation`: a model's test metrics in a chosen precision;
- :mod:`.run_folder`: a training run's files, resume state and checksums;
- :mod:`.training`: the training loop with exact resume;
- :mod:`.finetuned_accuracy`: Table 1;
- :mod:`.robust_accuracy`: accuracy on the corrupted samples;
- :mod:`.hypotheses`: the robustness hypothesis family and its correlations;
- :mod:`.layer_statistics`: learning vs forgetting across layers (Appendix C.1);
- :mod:`.checkpoint_selection`: the spread of forgetting as an early-stopping indicator;
- :mod:`.matched_properties`: the scale model's matched properties of the paper's setting;
- :mod:`.claims`: the paper's findings checked on a run's tables;
- :mod:`.model_comparison`: beyond the paper: the sources' models side by side;
- :mod:`.controls`: planted-effect controls: would the study find an effect it was given;
- :mod:`.control_mutations`: control measurements broken in known ways, which the checks must catch;
- :mod:`.figures`: every figure of the paper (drawing only);
- :mod:`.docs_blocks`: the documentation's blocks generated from what commands print.
"""
