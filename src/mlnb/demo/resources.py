"""Files that installed packages ship, named so that a replica record travels between machines.

A record names the package, the file's path inside it, the package's version and the
file's md5: never the absolute site-packages path of the machine that built it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlnb.io import file_md5, package_file


@functools.cache
def package_version(package: str) -> str:
    """The installed version of the distribution that provides import package ``package``."""
    distributions = importlib.metadata.packages_distributions().get(package, [package])
    return importlib.metadata.version(distributions[0])


@dataclass(frozen=True)
class PackageResource:
    """A file inside an installed package: ``path`` is relative to the package's folder (POSIX)."""

    package: str
    path: str

    @classmethod
    def at(cls, package: str, file: str | Path) -> PackageResource:
        """The resource for an absolute ``file`` that lies inside ``package``."""
        folder = Path(importlib.util.find_spec(package).origin).parent
        return cls(package, Path(file).resolve().relative_to(folder.resolve()).as_posix())

    def file(self) -> Path:
        return package_file(self.package, *PurePosixPath(self.path).parts)

    def record(self) -> dict[str, str]:
        return {"package": self.package, "path": self.path, "version": package_version(self.package),
                "md5": file_md5(self.file())}
