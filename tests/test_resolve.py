"""Root: request paths to files, CGI scripts and upload targets, on a real file system."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hospes.app.resolve import MAX_NAME_BYTES, Root, names


@pytest.fixture
def root(tmp_path: Path) -> Root:
    top = tmp_path / "root"
    for name in ("admin/tool", "bin/run", ".hooks/run"):
        script = top / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
    (top / "plain.txt").write_text("not a script\n")
    (top / "docs").mkdir()
    (top / "tool").symlink_to("admin/tool")
    (top / "adm").symlink_to("admin", target_is_directory=True)
    (top / "loop").symlink_to(".", target_is_directory=True)
    (top / "hook").symlink_to(".hooks/run")
    (top / "hidden-dir").symlink_to(".hooks", target_is_directory=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run").write_text("#!/bin/sh\n")
    (outside / "run").chmod(0o755)
    (top / "out").symlink_to(outside, target_is_directory=True)
    (top / "out-run").symlink_to(outside / "run")
    os.mkfifo(top / "fifo")
    return Root(top)


def test_names_refuses_what_may_not_name_a_file():
    assert names("/a/b/") == ["a", "b"]
    assert names("/") == []
    for bad in ("/.git/config", "/a/.x", "/a\\b", "/" + "x" * (MAX_NAME_BYTES + 1)):
        assert names(bad) is None, bad


@given(st.lists(st.text(min_size=1).filter(lambda part: "/" not in part), max_size=4))
def test_names_keeps_exactly_the_servable_segments(parts):
    found = names("/" + "/".join(parts))
    servable = all(
        not part.startswith(".")
        and "\\" not in part
        and len(part.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
        for part in parts
    )
    assert found == (parts if servable else None)


@pytest.mark.parametrize(
    ("relative", "named", "real", "rest", "path"),
    [
        ("/admin/tool", "/admin/tool", "admin/tool", "", "/admin/tool"),
        ("/tool", "/tool", "admin/tool", "", "/admin/tool"),
        ("/tool/a/b", "/tool", "admin/tool", "/a/b", "/admin/tool/a/b"),
        ("/tool/a/", "/tool", "admin/tool", "/a/", "/admin/tool/a/"),
        ("/tool/", "/tool", "admin/tool", "/", "/admin/tool/"),
        ("/adm/tool/x", "/adm/tool", "admin/tool", "/x", "/admin/tool/x"),
        ("/loop/loop/bin/run", "/loop/loop/bin/run", "bin/run", "", "/bin/run"),
    ],
)
def test_executable_is_the_first_script_along_the_path_where_it_really_is(
    root, relative, named, real, rest, path
):
    found = root.executable(relative)
    assert found is not None
    assert (found.named, found.file.real, found.rest, found.path) == (
        named,
        os.path.join(root.real, real),
        rest,
        path,
    )


@pytest.mark.parametrize(
    "relative",
    [
        "/",
        "/admin/",  # a directory, no script in it named
        "/plain.txt/x",  # not executable: the search ends there
        "/missing/run",
        "/fifo",
        "/.hooks/run",  # hidden, as requested
        "/hook",  # hidden, where the symlink leads
        "/hidden-dir/run",
        "/out/run",  # outside the root
        "/out-run",
    ],
)
def test_executable_finds_nothing_a_static_file_could_not_be(root, relative):
    assert root.executable(relative) is None


@pytest.mark.parametrize(
    ("relative", "directory", "path"),
    [
        ("/new.gmi", "/", "/new.gmi"),
        ("/docs/new.gmi", "/docs", "/docs/new.gmi"),
        ("/adm/new.gmi", "/admin", "/admin/new.gmi"),
        ("/loop/adm/new.gmi", "/admin", "/admin/new.gmi"),
        ("/tool", "/", "/tool"),  # the name itself is not followed
    ],
)
def test_target_is_a_name_in_a_resolved_directory(root, relative, directory, path):
    target = root.target(relative)
    assert target is not None
    assert (target.directory.path, target.path) == (directory, path)
    assert target.real == os.path.join(root.real, path.lstrip("/"))


@pytest.mark.parametrize(
    "relative",
    ["/", "/missing/new.gmi", "/plain.txt/new.gmi", "/out/new.gmi", "/hidden-dir/new", "/.x"],
)
def test_target_needs_an_existing_directory_inside_the_root(root, relative):
    assert root.target(relative) is None


def test_root_names_itself_in_its_error(tmp_path):
    with pytest.raises(NotADirectoryError, match=r"^CGI directory .*missing is not a directory$"):
        Root(tmp_path / "missing", what="CGI directory")
    with pytest.raises(NotADirectoryError, match=r"^capsule root "):
        Root(tmp_path / "missing")
