"""`maqbool models`: the registry, downloads from a local HTTP server on 127.0.0.1 (right file,
wrong checksum, truncated and resumed transfers, 404) and model_path: NAME resolution."""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from helpers.checkpoints import patch_netvlad_checkpoint
from maqbool_ros.core.descriptor.download import ChecksumError, DownloadError, download
from maqbool_ros.core.descriptor.registry import PACKAGED, load_registry, read_registry
from maqbool_ros.tools.cli import main


class _Server:
    """Serves ``files`` (name -> bytes) with Range support; ``cut[name]`` bytes are sent of
    the next answer for ``name`` (then the connection drops, Content-Length promising more)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ranges: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                outer.ranges.append(self.headers.get("Range"))
                if name not in outer.files:
                    self.send_error(404, "Not Found")
                    return
                data, start = outer.files[name], 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].rstrip("-"))
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in outer.cut:
                    body = body[:outer.cut.pop(name)]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAQBOOL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _blob(n: int = 300_000) -> tuple[bytes, str]:
    data = np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()
    return data, hashlib.sha256(data).hexdigest()


def test_packaged_registry_has_confirmed_entries_with_sha256_and_licence():
    header, entries = read_registry(PACKAGED)
    assert header["format"] == 1 and header["revision"] >= 1
    confirmed = [e for e in entries if e.confirmed]
    assert len(confirmed) >= 2
    for e in confirmed:
        assert len(e.sha256) == 64 and e.licence and e.training_set and e.urls[0].startswith("https://")
    assert len({e.name for e in entries}) == len(entries)


def test_right_file_is_verified_and_renamed(tmp_path, server):
    data, sha = _blob()
    server.files["m.pth"] = data
    dest = download([server.url("m.pth")], tmp_path / "m.pth", sha, len(data), progress=False)
    assert dest.read_bytes() == data and not (tmp_path / "m.pth.part").exists()
    server.ranges.clear()  # a verified file is kept without asking the server again
    assert download([server.url("m.pth")], dest, sha, progress=False) == dest and server.ranges == []


def test_wrong_checksum_is_refused_and_nothing_is_installed(tmp_path, server):
    data, _ = _blob()
    server.files["m.pth"] = data
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download([server.url("m.pth")], tmp_path / "m.pth", "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_keeps_the_part_and_the_next_call_resumes(tmp_path, server):
    data, sha = _blob()
    server.files["m.pth"] = data
    server.cut["m.pth"] = 100_000
    with pytest.raises(DownloadError, match="interrupted after 100,000 of 300,000 bytes"):
        download([server.url("m.pth")], tmp_path / "m.pth", sha, progress=False)
    part = tmp_path / "m.pth.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "m.pth").exists()
    dest = download([server.url("m.pth")], tmp_path / "m.pth", sha, progress=False)
    assert server.ranges == [None, "bytes=100000-"]  # the second request asked only for the rest
    assert dest.read_bytes() == data and not part.exists()


def test_404_tries_the_next_url_then_fails_clearly(tmp_path, server):
    data, sha = _blob(1000)
    server.files["b.pth"] = data
    assert download([server.url("a.pth"), server.url("b.pth")], tmp_path / "x.pth", sha,
                    progress=False).read_bytes() == data
    with pytest.raises(DownloadError, match="HTTP 404"):
        download([server.url("missing.pth")], tmp_path / "y.pth", sha, progress=False)
    assert not (tmp_path / "y.pth").exists() and not (tmp_path / "y.pth.part").exists()


def _registry(tmp_path, server, sha: str | None, confirmed: bool, size: int) -> None:
    doc = {"format": 1, "revision": 1, "models": [{
        "name": "test-vgg", "title": "synthesized", "urls": [server.url("ck.pth.tar")], "filename": "ck.pth.tar",
        "sha256": sha, "confirmed": confirmed, "licence": "MIT", "training_set": "none", "descriptor_dim": 64,
        "layout": "patch-netvlad", "size_bytes": size}]}
    (tmp_path / "reg.json").write_text(json.dumps(doc))


def test_pull_exports_into_the_cache_and_model_path_name_resolves(tmp_path, server, cache, monkeypatch, capsys):
    from maqbool_ros.core.descriptor.default_model import resolve_model_path
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    ckpt = tmp_path / "src.pth.tar"
    patch_netvlad_checkpoint(ckpt, k=4, p=64)
    data = ckpt.read_bytes()
    server.files["ck.pth.tar"] = data
    sha = hashlib.sha256(data).hexdigest()
    monkeypatch.setenv("MAQBOOL_MODEL_REGISTRY", str(tmp_path / "reg.json"))
    _registry(tmp_path, server, None, False, len(data))
    assert "test-vgg" in load_registry()
    # the node's path: a name not pulled is an error naming the command, never a download
    with pytest.raises(FileNotFoundError, match="maqbool models pull test-vgg"):
        resolve_model_path("test-vgg")
    # no confirmed checksum: refused unless the user gives one
    assert main(["models", "pull", "test-vgg", "--quiet"]) == 2
    assert "pass --sha256" in capsys.readouterr().err and server.ranges == []
    assert main(["models", "pull", "test-vgg", "--quiet", "--sha256", sha]) == 0
    onnx_path = cache / "models" / "test-vgg.onnx"
    assert resolve_model_path("test-vgg") == onnx_path
    engine = DescriptorEngine("test-vgg", device="cpu", image_size=(96, 64))
    assert engine.compute(np.full((64, 96, 3), 90, np.uint8)).descriptor.shape == (64,)
    assert "yes" in [line for line in _listing(capsys) if line.startswith("test-vgg")][0]
    # a path that exists always wins over a name
    assert resolve_model_path(str(onnx_path)) == onnx_path


def test_pull_refuses_a_mismatch_for_a_confirmed_entry(tmp_path, server, cache, monkeypatch, capsys):
    data, _ = _blob(5000)
    server.files["ck.pth.tar"] = data
    monkeypatch.setenv("MAQBOOL_MODEL_REGISTRY", str(tmp_path / "reg.json"))
    _registry(tmp_path, server, "1" * 64, True, len(data))
    assert main(["models", "pull", "test-vgg", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "sha256 mismatch" in err and "nothing was installed" in err
    assert not (cache / "models" / "test-vgg.onnx").exists() and not (cache / "checkpoints" / "ck.pth.tar").exists()
    assert main(["models", "pull", "test-vgg", "--quiet", "--sha256", "2" * 64]) == 2  # differs from the registry's
    assert "differs from the registry" in capsys.readouterr().err


def _listing(capsys) -> list[str]:
    capsys.readouterr()  # drop what earlier commands printed
    assert main(["models", "list"]) == 0
    return capsys.readouterr().out.splitlines()


def test_bad_registry_file_names_the_field(tmp_path, monkeypatch):
    (tmp_path / "reg.json").write_text(json.dumps({"format": 1, "models": [{"name": "x", "urls": ["ftp://a"]}]}))
    monkeypatch.setenv("MAQBOOL_MODEL_REGISTRY", str(tmp_path / "reg.json"))
    with pytest.raises(ValueError, match="needs at least one http"):
        load_registry()


def test_engine_from_config_with_a_name_not_pulled_names_the_pull_command(cache):
    """The node, eval and demo build their engine this way: no download, a clear error."""
    from maqbool_ros.core.config import MaqboolConfig
    from maqbool_ros.core.descriptor.engine import DescriptorEngine

    with pytest.raises(FileNotFoundError, match="maqbool models pull patchnetvlad-pitts30k-4096"):
        DescriptorEngine.from_config(MaqboolConfig(model_path="patchnetvlad-pitts30k-4096", device="cpu"))
    assert not cache.exists()  # nothing was downloaded or created


def test_a_registry_that_is_not_utf8_json_is_named(tmp_path):
    bad = tmp_path / "registry.json"
    bad.write_bytes(b'{"format": 1, "models": ["\xff"]}')
    with pytest.raises(ValueError, match=r"model registry: cannot be read: .*registry.json: not valid JSON"):
        read_registry(bad)
