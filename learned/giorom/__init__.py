"""simcore.learned.giorom: reduced-order graph neural operators (GIOROM) and the GNS baseline."""
