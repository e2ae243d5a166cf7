"""Static files over a real server: index files, redirects, MIME types, no way out of the root."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import raw_request
from hospes.app.filesystems import LocalDevices
from hospes.app.request import Request
from hospes.app.static import SMALL_FILE, StaticFiles, guess_mime
from hospes.gemini.url import parse_url

SECRET = b"the secret outside the capsule\n"


@pytest.fixture
def capsule(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "capsule"
    (root / "docs").mkdir(parents=True)
    (root / "index.gmi").write_text("# Home\n")
    (root / "docs" / "index.gmi").write_text("# Docs\n")
    (root / "docs" / "guide.gmi").write_text("# Guide\n")
    (root / "notes.txt").write_text("plain notes\n")
    (root / "café.gmi").write_text("# Café\n")
    (root / ".hidden.gmi").write_text("hidden\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "empty").mkdir()
    (root / "big.bin").write_bytes(os.urandom(SMALL_FILE * 3 + 123))
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside, target_is_directory=True)
    (root / "inside-link.gmi").symlink_to(root / "docs" / "guide.gmi")
    (root / "loop").symlink_to(root / "loop")
    return root


@pytest.fixture
def files(serve, capsule):
    return serve(StaticFiles(capsule))


def get(server, path: str):
    return raw_request(server.port, f"gemini://localhost:{server.port}{path}")


def test_root_index(files):
    response = get(files, "/")
    assert (response.status, response.meta, response.body) == (20, "text/gemini", b"# Home\n")


def test_url_without_path_serves_root(files):
    assert get(files, "").body == b"# Home\n"


def test_directory_without_slash_redirects(files):
    response = get(files, "/docs")
    assert (response.status, response.meta) == (31, "/docs/")


def test_directory_index(files):
    assert get(files, "/docs/").body == b"# Docs\n"


def test_directory_without_index_is_not_found(files):
    assert get(files, "/empty/").status == 51


def test_file_and_mime(files):
    response = get(files, "/notes.txt")
    assert (response.status, response.meta, response.body) == (20, "text/plain", b"plain notes\n")


def test_percent_encoded_utf8_name(files):
    assert get(files, "/caf%C3%A9.gmi").body == b"# Caf\xc3\xa9\n"
    assert get(files, "/café.gmi").body == b"# Caf\xc3\xa9\n"


def test_large_file_is_streamed_intact(files, capsule):
    response = get(files, "/big.bin")
    assert response.status == 20
    assert response.meta == "application/octet-stream"
    assert response.body == (capsule / "big.bin").read_bytes()


def test_missing_file(files):
    response = get(files, "/nope.gmi")
    assert response.status == 51


def test_trailing_slash_on_a_file_is_not_found(files):
    assert get(files, "/notes.txt/").status == 51


@pytest.mark.parametrize("path", ["/.hidden.gmi", "/.git/config", "/docs/../.git/config"])
def test_hidden_files_are_not_served(files, path):
    response = get(files, path)
    if response.status == 31:
        response = raw_request(files.port, response.meta)
    assert response.status == 51
    assert response.body == b""


def test_name_too_long_for_the_file_system(files):
    assert get(files, "/" + "a" * 300).status == 51
    assert get(files, "/" + "é" * 200).status == 51


@pytest.mark.parametrize(
    "path",
    [
        "/../outside/secret.txt",
        "/docs/../../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/%2e%2e/outside/secret.txt",
        "/.%2e/outside/secret.txt",
        "/escape.txt",
        "/escape-dir/secret.txt",
        "/loop",
        "/..%5coutside%5csecret.txt",
        "//outside/secret.txt",
    ],
)
def test_nothing_outside_the_root_is_ever_served(files, path):
    response = get(files, path)
    for _ in range(3):
        if response.status != 31:
            break
        target = response.meta if response.meta.startswith("gemini:") else files.url(response.meta)
        response = raw_request(files.port, target)
    assert SECRET not in response.body
    assert response.status in (51, 59)


def test_dot_segments_are_redirected_to_the_canonical_path(files):
    response = get(files, "/docs/../notes.txt")
    assert response.status == 31
    assert response.meta == files.url("/notes.txt")


def test_symlink_inside_the_root_is_served(files):
    assert get(files, "/inside-link.gmi").body == b"# Guide\n"


def test_root_must_be_a_directory(tmp_path):
    with pytest.raises(NotADirectoryError):
        StaticFiles(tmp_path / "missing")


def test_unreadable_file_is_not_found(files, capsule):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    (capsule / "locked.gmi").write_text("x")
    (capsule / "locked.gmi").chmod(0)
    assert get(files, "/locked.gmi").status == 51


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("a.gmi", "text/gemini"),
        ("a.gemini", "text/gemini"),
        ("a.txt", "text/plain"),
        ("a.png", "image/png"),
        ("a.md", "text/markdown"),
        ("a.tar.gz", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ],
)
def test_guess_mime(name, mime):
    assert guess_mime(name) == mime


def test_cached_file_is_never_served_stale(files, capsule):
    assert get(files, "/notes.txt").body == b"plain notes\n"
    (capsule / "notes.txt").write_text("edited notes, longer\n")
    assert get(files, "/notes.txt").body == b"edited notes, longer\n"
    replacement = capsule / "replacement.txt"
    replacement.write_text("plain notes\n")
    replacement.replace(capsule / "notes.txt")
    assert get(files, "/notes.txt").body == b"plain notes\n"
    (capsule / "notes.txt").unlink()
    assert get(files, "/notes.txt").status == 51


def test_cached_file_behind_a_swapped_symlink_is_not_served(files, capsule, tmp_path):
    assert get(files, "/docs/guide.gmi").body == b"# Guide\n"
    outside = tmp_path / "outside"
    (outside / "guide.gmi").write_bytes(SECRET)
    (capsule / "docs").rename(capsule / "docs-old")
    (capsule / "docs").symlink_to(outside, target_is_directory=True)
    response = get(files, "/docs/guide.gmi")
    assert response.status == 51
    assert SECRET not in response.body


def test_cache_is_bounded(capsule):
    static = StaticFiles(capsule, cache_bytes=30)
    for name in ("a", "b", "c"):
        (capsule / f"{name}.txt").write_text(name * 12)
        request = Request(parse_url(f"gemini://a/{name}.txt"), f"/{name}.txt", None, "a", "", 0)
        assert asyncio.run(static(request)).body == (name * 12).encode()
    assert static._cached_bytes <= 30
    assert list(static._cache) == ["/b.txt", "/c.txt"]


def _file_request(path: str) -> Request:
    return Request(parse_url(f"gemini://a{path}"), path, None, "a", "", 0)


async def _hit_while_the_pool_hangs(static: StaticFiles) -> tuple[bool, bytes]:
    """Cache ``/notes.txt``, hang the loop's only pool thread (as a dead NFS server would),
    request the file again: whether it was answered while the pool hung, and its body."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1)
    loop.set_default_executor(pool)
    assert (await static(_file_request("/notes.txt"))).body == b"plain notes\n"
    gate = threading.Event()
    hung = loop.run_in_executor(None, gate.wait)
    hit = asyncio.ensure_future(static(_file_request("/notes.txt")))
    await asyncio.sleep(0.3)  # the loop runs meanwhile: this sleep ends
    answered = hit.done()
    gate.set()
    await hung
    response = await asyncio.wait_for(hit, 5)
    pool.shutdown()
    return answered, response.body


def test_a_cached_file_on_a_network_file_system_is_revalidated_off_the_loop(capsule, tmp_path):
    """A hung mount stalls the requests for its files, never the event loop."""
    device = os.stat(capsule / "notes.txt").st_dev
    table = tmp_path / "mountinfo"
    table.write_text(f"61 27 {os.major(device)}:{os.minor(device)} / /srv rw - nfs4 files:/x rw\n")
    static = StaticFiles(capsule, devices=LocalDevices(table))
    answered, body = asyncio.run(_hit_while_the_pool_hangs(static))
    assert not answered  # its stat waited in the pool
    assert body == b"plain notes\n"


def test_a_cached_file_on_a_local_disk_is_revalidated_on_the_loop(capsule):
    """The fast path: no thread round trip for a file the kernel has just served."""
    if not LocalDevices().is_local(os.stat(capsule).st_dev):
        pytest.skip("the test's temporary directory is not on a local file system here")
    static = StaticFiles(capsule)
    answered, body = asyncio.run(_hit_while_the_pool_hangs(static))
    assert answered
    assert body == b"plain notes\n"
