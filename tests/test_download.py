"""python -m asd.data.download against a local HTTP server serving archives with the official names
and layout (the real server cannot be reached from here)."""

import hashlib
import io
import json
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asd.data import download as download_module
from asd.data.download import DownloadError, download, select_archives, with_mirror
from asd.data.index import index_machine

FAN = "/record/10902294/files/dev_fan.zip"  # DCASE 2024's official path of the fan archive
VALVE = "/record/10902294/files/dev_valve.zip"
TOYCAR_2026 = "/records/19336329/files/dev_ToyCar.zip"
TOYCAR_2026_R2 = "/records/19336329/files/dev_ToyCar_r2.zip"


def wav_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.random.default_rng(seed).uniform(-0.1, 0.1, 1600), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def machine_files(machine: str, seed: int = 0) -> dict[str, bytes]:
    """A machine type's folder as an official archive holds it: train and test clips, attributes."""
    names = [
        "train/section_00_source_train_normal_0000_a_1.wav",
        "train/section_00_target_train_normal_0000_a_2.wav",
        "test/section_00_source_test_normal_0000_a_1.wav",
        "test/section_00_source_test_anomaly_0000_a_1.wav",
        "test/section_00_target_test_normal_0000_a_2.wav",
        "test/section_00_target_test_anomaly_0000_a_2.wav",
    ]
    return {f"{machine}/{name}": wav_bytes(seed + i) for i, name in enumerate(names)}


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # stored: a flipped byte hits audio data
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class Server:
    """Archives by URL path, Zenodo's record API with their MD5s, range requests, a request log,
    and a switch that cuts a response off after some bytes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.published: dict[str, str] = {}  # path -> md5 the record API announces
        self.cut_after: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path.startswith("/api/records/"):
                    record = self.path.rsplit("/", 1)[1]
                    files = [
                        {"key": Path(p).name, "checksum": f"md5:{md5}"}
                        for p, md5 in server.published.items()
                        if f"/{record}/" in p
                    ]
                    if not files:
                        self.send_error(404)
                        return
                    self._send(200, json.dumps({"files": files}).encode())
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"][6:].rstrip("-")) if self.headers.get("Range") else 0
                if start >= len(data):
                    self.send_error(416)
                    return
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
                self._send(206 if start else 200, data[start:], headers, server.cut_after.get(self.path))

            def _send(self, status, body, headers=None, cut=None):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body[:cut] if cut is not None else body)
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, path: str, data: bytes, publish: bool = True) -> bytes:
        self.files[path] = data
        if publish:
            self.published[path] = hashlib.md5(data).hexdigest()
        return data


@pytest.fixture
def server():
    running = Server()
    running.thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def dataset_files(root: Path) -> dict[str, bytes]:
    raw = root / "dev_data" / "raw"
    return (
        {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()} if raw.exists() else {}
    )


def test_download_unpacks_the_official_layout_and_a_second_run_does_nothing(server, tmp_path):
    fan, valve = machine_files("fan"), machine_files("valve", seed=10)
    server.add(FAN, zip_bytes(fan))
    server.add(VALVE, zip_bytes(valve))
    root = tmp_path / "dcase2024t2"
    command = [sys.executable, "-m", "asd.data.download", "--year", "2024", "--split", "dev", "--root", str(root)]
    command += ["--machines", "fan,valve", "--mirror", server.url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "2 archive(s) downloaded" in first.stdout
    assert dataset_files(root) == {**fan, **valve}
    assert sorted(p.name for p in (root / ".downloads").iterdir()) == ["dev_fan.zip.json", "dev_valve.zip.json"]
    # the loader reads it as it is
    clips = index_machine(root, "dev", "fan")
    assert len(clips) == 6 and {c.info.label for c in clips if c.info.split == "test"} == {"normal", "anomaly"}

    served = len(server.requests)
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "up to date" in second.stdout
    assert len(server.requests) == served  # not one request
    # a file deleted from the dataset is fetched again, with its archive
    (root / "dev_data" / "raw" / "fan" / "train" / "section_00_source_train_normal_0000_a_1.wav").unlink()
    assert download(2024, "dev", root, ["fan", "valve"], server.url, progress=False) == ["dev_fan.zip"]
    assert dataset_files(root) == {**fan, **valve}


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    fan = machine_files("fan")
    archive = server.add(FAN, zip_bytes(fan))
    half = len(archive) // 2
    server.cut_after[FAN] = half
    root = tmp_path / "dcase2024t2"
    with pytest.raises(DownloadError, match=f"{server.url}{FAN}: download failed.*run the command again to resume"):
        download(2024, "dev", root, ["fan"], server.url, progress=False)
    assert dataset_files(root) == {}  # nothing half-unpacked
    assert (root / ".downloads" / "dev_fan.zip.part").stat().st_size == half

    del server.cut_after[FAN]
    assert download(2024, "dev", root, ["fan"], server.url, progress=False) == ["dev_fan.zip"]
    archive_requests = [r for r in server.requests if r[0] == FAN]
    assert archive_requests[-1] == (FAN, f"bytes={half}-")  # only the rest was asked for
    assert dataset_files(root) == fan
    assert not (root / ".downloads" / "dev_fan.zip.part").exists()


@pytest.mark.parametrize("published", [True, False], ids=["published MD5", "zip CRC only"])
def test_a_corrupted_archive_is_refused_and_nothing_of_it_is_kept(published, server, tmp_path):
    fan = machine_files("fan")
    archive = bytearray(zip_bytes(fan))
    payload = archive.index(next(iter(fan.values()))[100:120])  # a byte inside the first clip's samples
    if published:
        server.published[FAN] = hashlib.md5(bytes(archive)).hexdigest()  # the checksum of the intact archive
    archive[payload] ^= 0xFF
    server.add(FAN, bytes(archive), publish=False)
    root = tmp_path / "dcase2024t2"
    message = "MD5 .* differs from the published" if published else "fails its CRC check"
    with pytest.raises(DownloadError, match=f"{server.url}{FAN}: .*{message}"):
        download(2024, "dev", root, ["fan"], server.url, progress=False)
    assert dataset_files(root) == {}
    assert list((root / ".downloads").iterdir()) == []  # not kept to be resumed from either


def test_an_archive_outside_the_official_layout_is_refused(server, tmp_path):
    server.add(FAN, zip_bytes({"fan/train/a.wav": wav_bytes(0), "../escape.wav": wav_bytes(1)}))
    root = tmp_path / "dcase2024t2"
    with pytest.raises(DownloadError, match=r"member '\.\./escape\.wav' is not under fan/"):
        download(2024, "dev", root, ["fan"], server.url, progress=False)
    assert dataset_files(root) == {} and not (tmp_path / "escape.wav").exists()


def test_a_re_release_replaces_the_earlier_archive(server, tmp_path, monkeypatch):
    earlier = machine_files("ToyCar")
    server.add(TOYCAR_2026, zip_bytes(earlier))
    root = tmp_path / "dcase2026t2"
    # the list as it was before the re-release
    table = download_module.archive_table()
    before = {**table, 2026: {"ToyCar": {"dev": [f"https://zenodo.org{TOYCAR_2026}"]}}}
    monkeypatch.setattr(download_module, "archive_table", lambda: before)
    download(2026, "dev", root, ["ToyCar"], server.url, progress=False)
    assert dataset_files(root) == earlier
    notes = root / "dev_data" / "raw" / "ToyCar" / "my_notes.txt"
    notes.write_text("the user's own file")

    # the re-release drops one clip, changes another and adds a third
    names = sorted(earlier)
    dropped, changed = names[0], names[1]
    release = {name: data for name, data in earlier.items() if name != dropped}
    release[changed] = wav_bytes(99)
    release["ToyCar/train/section_00_source_train_normal_0001_a_1.wav"] = wav_bytes(100)
    server.add(TOYCAR_2026_R2, zip_bytes(release))
    monkeypatch.setattr(download_module, "archive_table", lambda: table)  # today's list: dev_ToyCar_r2.zip
    assert download(2026, "dev", root, ["ToyCar"], server.url, progress=False) == ["dev_ToyCar_r2.zip"]
    assert {k: v for k, v in dataset_files(root).items() if k.endswith(".wav")} == release
    assert notes.read_text() == "the user's own file"
    assert sorted(p.name for p in (root / ".downloads").iterdir()) == ["dev_ToyCar_r2.zip.json"]
    assert download(2026, "dev", root, ["ToyCar"], server.url, progress=False) == []


def test_no_network_is_a_clear_error_naming_the_url(tmp_path):
    unused = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = unused.server_port
    unused.server_close()  # nothing listens there any more
    root = tmp_path / "dcase2024t2"
    command = [sys.executable, "-m", "asd.data.download", "--year", "2024", "--split", "dev", "--root", str(root)]
    result = subprocess.run(
        command + ["--machines", "fan", "--mirror", f"http://127.0.0.1:{port}"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"error: http://127.0.0.1:{port}{FAN}: download failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert dataset_files(root) == {}


@pytest.mark.parametrize("inside", [False, True])
def test_a_root_that_is_a_file_is_a_clear_error(inside, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    root = notes / "dcase2024t2" if inside else notes
    command = [sys.executable, "-m", "asd.data.download", "--year", "2024", "--split", "dev", "--root", str(root)]
    result = subprocess.run(command + ["--machines", "fan"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"error: --root {root}: {notes} is a file, not a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert notes.read_text() == "mine"


def test_archive_selection_and_mirror_urls():
    assert with_mirror("https://zenodo.org/records/1/files/a.zip", "http://10.0.0.1:8080/dcase/") == (
        "http://10.0.0.1:8080/dcase/records/1/files/a.zip"
    )
    names = [a.name for a in select_archives(2024, "eval", ["3DPrinter"])]
    assert names == ["eval_data_3DPrinter_train_r2.zip", "eval_data_3DPrinter_test.zip"]
    assert len(select_archives(2026, "dev", None)) == 7
    with pytest.raises(DownloadError, match="no dev archives for fann; it has: .*fan"):
        select_archives(2024, "dev", ["fann"])
    with pytest.raises(DownloadError, match="no official archive list for 2019"):
        select_archives(2019, "dev", None)
