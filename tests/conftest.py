"""Suite-wide settings.

Torch's intra-op thread pool spins when the machine is busy; for the small networks
of the test suite one thread is both faster and far more predictable.
"""

import torch

torch.set_num_threads(1)
