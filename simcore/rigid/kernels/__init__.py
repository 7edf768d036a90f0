"""The rigid step in Taichi kernels (see solve.py); `runner.KernelRunner` packs a World for them."""
