import torch

# Two cores are shared by the test run and anything else on the machine; one intra-op
# thread keeps timings predictable and avoids oversubscription.
torch.set_num_threads(1)
