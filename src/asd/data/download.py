"""Download and unpack the official DCASE Task 2 archives into the layout the loaders read.

python -m asd.data.download --year 2024 --split dev --root data/dcase2024t2 [--machines fan,valve]
python -m asd.data.download --year 2026 --split eval --root data/dcase2026t2 --mirror https://mirror.example.org

Each archive of the selected machine types (``dcase_archives.yaml``, the official lists) is

* downloaded to ``<root>/.downloads/<archive>.part``, resuming a partial file with an HTTP range
  request, with a progress bar;
* verified before anything is unpacked: its size against the server's, its MD5 against the
  checksum the repository publishes (Zenodo's record API; where none is reachable the size and
  the archive's own CRCs still are checked), every member's CRC, and that its members lie under
  ``<machine>/`` (no absolute paths, no ``..``). A truncated or corrupt archive is deleted and
  named in the error; nothing of it reaches the dataset folder;
* unpacked through a staging folder into ``<root>/<dev_data|eval_data>/raw/<machine>/``
  (DCASE 2021's ``source_test/`` and ``target_test/`` become ``test/``, as the official baseline
  merges them), then deleted; ``<root>/.downloads/<archive>.json`` records the files it gave.

A second run finds every record with its files unchanged and makes no request at all. Where a
re-release (``..._r2.zip``) replaces an archive unpacked before, the files of the earlier one that
the re-release no longer holds are removed (only those the record lists, unchanged since), then
the re-release is unpacked over the rest. No network: an error naming the URL; the partial file
stays for the next run to resume.

Written on ``urllib`` and ``zipfile`` rather than a download library: resuming, verifying and
unpacking must be one transaction against the dataset folder, which no library offers here.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

import yaml
from tqdm import tqdm

from asd.files import write_text

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"dev": "dev_data", "eval": "eval_data"}
STATE_FOLDER = ".downloads"
# DCASE 2021 split its test clips by domain; the loaders read one test folder, as the baseline merges them
FOLDER_RENAMES = {"source_test": "test", "target_test": "test"}
CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """A download, verification or unpacking that failed; the message names the URL or archive."""


@dataclass(frozen=True)
class Archive:
    url: str
    machine: str

    @property
    def name(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def replaces(self) -> str | None:
        """The earlier release this archive replaces (``dev_ToyCar_r2.zip`` -> ``dev_ToyCar.zip``)."""
        match = re.fullmatch(r"(.+)_r\d+(\.zip)", self.name)
        return match.group(1) + match.group(2) if match else None


def archive_table() -> dict[int, dict[str, dict[str, list[str]]]]:
    """year -> machine type -> split -> official archive URLs."""
    return yaml.safe_load(resources.files("asd.data").joinpath("dcase_archives.yaml").read_text())


def with_mirror(url: str, mirror: str | None) -> str:
    """``url`` with the scheme and host (and any base path) of ``mirror``, its own path kept."""
    if not mirror:
        return url
    base, official = urlsplit(mirror), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + official.path, official.query, ""))


def select_archives(year: int, split: str, machines: list[str] | None, mirror: str | None = None) -> list[Archive]:
    table = archive_table()
    if year not in table:
        raise DownloadError(f"no official archive list for {year}; years: {', '.join(map(str, table))}")
    if split not in SPLIT_FOLDERS:
        raise DownloadError(f"--split must be dev or eval, got {split!r}")
    offered = [m for m, splits in table[year].items() if split in splits]
    unknown = sorted(set(machines or []) - set(offered))
    if unknown:
        raise DownloadError(f"DCASE {year} has no {split} archives for {', '.join(unknown)}; it has: {', '.join(offered)}")
    archives = []
    for machine in machines or offered:
        urls = [with_mirror(url, mirror) for url in table[year][machine][split]]
        listed = [Archive(url, machine) for url in urls]
        superseded = {a.replaces for a in listed}
        archives += [a for a in listed if a.name not in superseded]
    return archives


class Downloader:
    def __init__(self, root: str | Path, split: str, progress: bool = True):
        existing = next(p for p in (Path(root), *Path(root).absolute().parents) if p.exists())
        if not existing.is_dir():
            raise DownloadError(f"--root {root}: {existing} is a file, not a folder; give the dataset folder")
        self.target = Path(root) / SPLIT_FOLDERS[split] / "raw"
        self.state = Path(root) / STATE_FOLDER
        self.progress = progress

    def _record(self, name: str) -> Path:
        return self.state / f"{name}.json"

    def _recorded_files(self, name: str) -> dict[str, int] | None:
        try:
            return json.loads(self._record(name).read_text())["files"]
        except (OSError, ValueError, KeyError):
            return None

    def is_done(self, archive: Archive) -> bool:
        """Unpacked before, and every file it gave is still there with its size."""
        files = self._recorded_files(archive.name)
        return files is not None and all(
            (self.target / path).is_file() and (self.target / path).stat().st_size == size
            for path, size in files.items()
        )

    def fetch(self, archive: Archive) -> bool:
        """Download, verify and unpack ``archive`` unless done; return whether anything was done."""
        if self.is_done(archive):
            log.info("%s: already unpacked", archive.name)
            return False
        self.state.mkdir(parents=True, exist_ok=True)
        partial = self.state / f"{archive.name}.part"
        expected_size = self._download(archive.url, partial)
        try:
            members = self._verify(archive, partial, expected_size)
        except DownloadError:
            partial.unlink(missing_ok=True)  # a corrupt file must not be resumed from
            raise
        self._unpack(archive, partial, members)
        partial.unlink()
        return True

    def _download(self, url: str, partial: Path) -> int | None:
        """Fetch ``url`` into ``partial``, continuing what is there; return the full size if the server says."""
        have = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                resumed = response.status == 206
                if have and not resumed:
                    have = 0  # the server sends the whole file again
                total = _total_size(response, have if resumed else 0)
                with (
                    open(partial, "ab" if resumed else "wb") as file,
                    tqdm(
                        total=total,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        desc=partial.name.removesuffix(".part"),
                        disable=not self.progress,
                    ) as bar,
                ):
                    while chunk := response.read(CHUNK):
                        file.write(chunk)
                        bar.update(len(chunk))
                if total is not None and partial.stat().st_size < total:
                    # the connection closed early: http.client ends such a read without an error
                    raise ConnectionError(f"connection closed after {partial.stat().st_size} of {total} bytes")
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # the partial file is already complete
                return have
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", None) or err
            raise DownloadError(
                f"{url}: download failed ({reason}); {partial.stat().st_size if partial.exists() else 0} bytes "
                f"kept in {partial}, run the command again to resume"
            ) from err
        return total

    def _verify(self, archive: Archive, path: Path, expected_size: int | None) -> list[zipfile.ZipInfo]:
        size = path.stat().st_size
        if expected_size is not None and size != expected_size:
            raise DownloadError(f"{archive.url}: {size} bytes received, the server announced {expected_size}; deleted")
        published = published_md5(archive.url)
        if published is not None:
            md5 = hashlib.md5()
            with open(path, "rb") as file:
                while chunk := file.read(CHUNK):
                    md5.update(chunk)
            if md5.hexdigest() != published:
                raise DownloadError(
                    f"{archive.url}: MD5 {md5.hexdigest()} differs from the published {published}: corrupt; deleted"
                )
        else:
            log.warning("%s: no published checksum reachable; checking size and the archive's CRCs only", archive.url)
        try:
            with zipfile.ZipFile(path) as zip_file:
                damaged = zip_file.testzip()
                members = [m for m in zip_file.infolist() if not m.is_dir()]
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DownloadError(f"{archive.url}: not a readable zip archive ({err}); deleted") from err
        if damaged is not None:
            raise DownloadError(f"{archive.url}: {damaged} fails its CRC check: corrupt archive; deleted")
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if member.filename.startswith("/") or ".." in parts or not parts or parts[0] != archive.machine:
                raise DownloadError(
                    f"{archive.url}: member {member.filename!r} is not under {archive.machine}/; "
                    "not the official layout, nothing unpacked"
                )
        return members

    def _unpack(self, archive: Archive, path: Path, members: list[zipfile.ZipInfo]) -> None:
        staging = self.state / f"unpack-{archive.name}"
        shutil.rmtree(staging, ignore_errors=True)
        files: dict[str, int] = {}
        try:
            with zipfile.ZipFile(path) as zip_file:
                for member in members:
                    relative = _dataset_path(member.filename)
                    destination = staging / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with zip_file.open(member) as source, open(destination, "wb") as target:
                        shutil.copyfileobj(source, target, CHUNK)
                    files[relative] = member.file_size
            if archive.replaces:
                self._remove_earlier_release(archive.replaces, keep=set(files))
            for relative in files:
                destination = self.target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).replace(destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_text(self._record(archive.name), json.dumps({"url": archive.url, "files": files}, indent=1))

    def _remove_earlier_release(self, earlier: str, keep: set[str]) -> None:
        """Remove what the earlier release gave and the re-release does not, where still unchanged."""
        files = self._recorded_files(earlier)
        if files is None:
            return
        for relative, size in files.items():
            path = self.target / relative
            if relative not in keep and path.is_file() and path.stat().st_size == size:
                path.unlink()
        self._record(earlier).unlink()
        log.info("%s replaced by its re-release", earlier)


def _dataset_path(member: str) -> str:
    parts = list(PurePosixPath(member).parts)
    if len(parts) > 2:
        parts[1] = FOLDER_RENAMES.get(parts[1], parts[1])
    return str(PurePosixPath(*parts))


def _total_size(response, offset: int) -> int | None:
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else None


def published_md5(url: str) -> str | None:
    """The MD5 that the Zenodo record of ``url`` publishes for its file (from the same server, so a
    mirror that serves the record API is checked too); None where the record cannot be read."""
    parts = urlsplit(url)
    match = re.search(r"^(.*)/records?/(\d+)/files/([^/]+)$", parts.path)
    if not match:
        return None
    api = urlunsplit((parts.scheme, parts.netloc, f"{match.group(1)}/api/records/{match.group(2)}", "", ""))
    try:
        with urllib.request.urlopen(api, timeout=TIMEOUT_S) as response:
            record = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    for entry in record.get("files", []) if isinstance(record, dict) else []:
        checksum = str(entry.get("checksum", ""))
        if entry.get("key") == match.group(3) and checksum.startswith("md5:"):
            return checksum[4:]
    return None


def download(
    year: int,
    split: str,
    root: str | Path,
    machines: list[str] | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> list[str]:
    """Fetch every archive of the selection that is not unpacked yet; return the names of those fetched."""
    downloader = Downloader(root, split, progress)
    return [a.name for a in select_archives(year, split, machines, mirror) if downloader.fetch(a)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m asd.data.download", description="Download the official DCASE Task 2 archives and unpack them."
    )
    parser.add_argument("--year", type=int, required=True, help="2020 ... 2026")
    parser.add_argument("--split", required=True, choices=tuple(SPLIT_FOLDERS))
    parser.add_argument("--root", type=Path, required=True, help="the dataset folder (data.root)")
    parser.add_argument("--machines", help="comma-separated machine types (default: all of the split)")
    parser.add_argument("--mirror", help="base URL of another server; replaces the official scheme and host")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    machines = [m.strip() for m in args.machines.split(",") if m.strip()] if args.machines else None
    try:
        fetched = download(args.year, args.split, args.root, machines, args.mirror, progress=sys.stderr.isatty())
    except DownloadError as err:
        parser.exit(1, f"error: {err}\n")
    print(f"{len(fetched)} archive(s) downloaded and unpacked into {args.root}" if fetched else "up to date")


if __name__ == "__main__":
    main()
