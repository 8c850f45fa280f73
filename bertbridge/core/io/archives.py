"""Checks on model archives and folders before they are read, packed or uploaded.

A ``model.tar.gz`` is unpacked by a serving container; a member named ``../x`` or ``/etc/x``,
or a link pointing out of the archive, would write or expose files outside the model folder.
A model folder with a symlink out of it would pack (and upload) whatever file it points at.
bertbridge writes plain files only, so an archive member that is a link of any kind is refused.
Both are refused with the member or file named.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path

from bertbridge.core.errors import ArtifactError


def check_archive(path: Path) -> None:
    """Refuse a tar archive with a member that could reach outside the folder it is unpacked in:
    an absolute or ``..`` name, any symbolic or hard link, a device or a FIFO."""
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                problem = _member_problem(member)
                if problem:
                    raise ArtifactError(f"{path}: member {member.name!r} {problem}, so the archive is refused. "
                                        "Pack the model folder with bertbridge (run-local or deploy of the folder).")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{path}: not a readable model.tar.gz ({exc}). Pass the model folder instead.") from None


def _member_problem(member: tarfile.TarInfo) -> str:
    if _escapes(member.name):
        return "has a path outside the archive"
    if member.issym() or member.islnk():
        # bertbridge packs plain files only; a link, even one that looks local, can be chained
        # through other links (d -> ., esc -> d/..) to reach outside the folder it is unpacked in
        kind = "symbolic" if member.issym() else "hard"
        return f"is a {kind} link to {member.linkname!r} (model archives hold plain files only)"
    if member.isdev() or member.isfifo():
        return "is a device or FIFO"
    return ""


def _escapes(name: str) -> bool:
    """Whether an archive path is absolute or climbs above the archive root."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    normal = posixpath.normpath(name)
    return normal == ".." or normal.startswith("../")


def check_folder_links(folder: Path) -> None:
    """Refuse a folder holding a symbolic link that resolves outside it (packing would copy the target)."""
    root = folder.resolve()
    for path in sorted(folder.rglob("*")):
        if not path.is_symlink():
            continue
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop
            raise ArtifactError(f"{path}: a symbolic link that leads nowhere (dangling or a loop), so the model folder "
                                "is not packed. Remove it.") from None
        if target != root and root not in target.parents:
            raise ArtifactError(f"{path}: a symbolic link to {target}, outside the model folder {folder}, so it is "
                                "not packed. Replace it with the file itself, or remove it.")
