"""The package list, which pyproject.toml cannot express: simcore's subpackages (found, so a new one
ships without editing this file) plus the repository's top-level scenes/, assets/ and learned/ directories,
shipped inside the simcore namespace as simcore.scenes, simcore.assets and simcore.learned (a wheel is self-contained and installs
no generic top-level name). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=(find_packages(include=["simcore", "simcore.*"]) + ["simcore.scenes", "simcore.assets"]
              + ["simcore.learned" + p.removeprefix("learned") for p in find_packages(include=["learned", "learned.*"])]),
    package_dir={"simcore.scenes": "scenes", "simcore.assets": "assets", "simcore.learned": "learned"},
    package_data={"simcore.assets": ["*.obj", "*.urdf", "LICENSE.md"]},
)
