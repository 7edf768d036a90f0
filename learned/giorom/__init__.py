"""simcore.learned.giorom: reduced-order graph neural operators (Viswanath et al. 2024) and the GNS baseline.

- datasets.py: the per-material 3D datasets, made by simcore.learned.data.generate from the built-in families.
- sampling.py: farthest-point sampling of m ≪ n nodes.
- graph.py: radius graphs and decoder neighbourhoods from scipy's cKDTree.
- processor.py: the time stepper both models share (window of 5 velocities, wall distances, material
  embedding → interaction networks → accelerations).
- boundary.py: the domain's walls at rollout time (projection onto the walls, for GIOROM and GNS alike).
- decoder.py: the kernel decoder, displacement at any query point from the nodes, exact for affine fields.
- models.py: GIOROM and GNS behind one interface (loss, rollout).
- train.py / evaluate.py / rollout.py: `python -m simcore.learned.giorom.train|evaluate|rollout ...`.
"""
