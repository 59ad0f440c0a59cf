"""`make install` / `make uninstall` into a temporary DESTDIR, and `make deb`.

The binary under test ($SYNCSCOPE_BUILD/syncscope) is installed as it is:
make runs with `-o all` so nothing is rebuilt by the test.
"""

import json
import os
import pathlib
import subprocess

import pytest
import yaml

from conftest import BUILD, REPO, SYNCSCOPE, have


def make(*args):
    result = subprocess.run(["make", "--no-print-directory", "-o", "all", f"BUILD={BUILD}", *args],
                            cwd=REPO, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def check_tree(root, prefix, stripped=False):
    rel = prefix.lstrip("/")
    binary = root / rel / "bin/syncscope"
    assert os.access(binary, os.X_OK)
    if stripped:  # the package's copy has no debug info, the rest is the same
        expected = root.parent / "expected-binary"
        subprocess.run(["strip", "--strip-debug", "-o", str(expected), str(SYNCSCOPE)], check=True)
        assert binary.read_bytes() == expected.read_bytes()
    else:
        assert binary.read_bytes() == SYNCSCOPE.read_bytes()

    unit = (root / "lib/systemd/system/syncscope.service").read_text()
    assert f"ExecStart={prefix}/bin/syncscope agent --config /etc/syncscope/config.yaml" in unit
    assert "/usr/local/" not in unit or prefix == "/usr/local"

    config = root / "etc/syncscope/config.yaml"
    assert config.read_text() == (REPO / "config/default.yaml").read_text()
    checked = subprocess.run([str(binary), "config", "check", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    share = root / rel / "share/syncscope"
    dashboards = sorted(p.name for p in (share / "dashboards").glob("*.json"))
    assert dashboards == sorted(p.name for p in (REPO / "dashboards").glob("*.json")) and len(dashboards) == 4
    for name in dashboards:
        json.loads((share / "dashboards" / name).read_text())
    provider = yaml.safe_load((share / "provisioning/dashboards.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == f"{prefix}/share/syncscope/dashboards"
    assert (share / "provisioning/datasource.yaml").exists()
    rules = sorted(p.name for p in (share / "rules").glob("*.yaml"))
    assert rules == ["syncscope.rules.yaml"], rules
    assert (share / "default.yaml").exists()
    assert (root / rel / "share/doc/syncscope/README.md").exists()
    # The installed rules are valid as installed.
    result = subprocess.run(["promtool", "check", "rules", *[str(share / "rules" / r) for r in rules]],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_and_uninstall(tmp_path):
    root = tmp_path / "root"
    make("install", "PREFIX=/usr/local", f"DESTDIR={root}")
    check_tree(root, "/usr/local")

    # A second install keeps a locally edited config; uninstall keeps it too.
    config = root / "etc/syncscope/config.yaml"
    config.write_text(config.read_text().replace("log_level: info", "log_level: debug"))
    make("install", "PREFIX=/usr/local", f"DESTDIR={root}")
    assert "log_level: debug" in config.read_text()
    out = make("uninstall", "PREFIX=/usr/local", f"DESTDIR={root}")
    assert "kept" in out
    assert files_under(root) == ["etc/syncscope/config.yaml"]

    # An unedited config goes with the rest: nothing is left.
    make("install", "PREFIX=/usr/local", f"DESTDIR={tmp_path / 'clean'}")
    (tmp_path / "clean/etc/syncscope/config.yaml").write_text((REPO / "config/default.yaml").read_text())
    make("uninstall", "PREFIX=/usr/local", f"DESTDIR={tmp_path / 'clean'}")
    assert files_under(tmp_path / "clean") == []


def test_deb_package(tmp_path):
    if not have("dpkg-deb"):
        pytest.skip("dpkg-deb is not installed")
    make("deb", f"DEB_DIR={tmp_path}")
    debs = list(tmp_path.glob("syncscope_*.deb"))
    assert len(debs) == 1, list(tmp_path.iterdir())
    info = subprocess.run(["dpkg-deb", "--info", str(debs[0])], capture_output=True, text=True, check=True).stdout
    assert "Package: syncscope" in info and "Architecture: " in info
    depends = next(l for l in info.splitlines() if l.strip().startswith("Depends:"))
    for library_package in ("libelf1", "libcurl4", "libsystemd0"):
        assert library_package in depends, depends
    assert "conffiles" in info and "postinst" in info
    contents = subprocess.run(["dpkg-deb", "--contents", str(debs[0])], capture_output=True, text=True,
                              check=True).stdout
    for path in ("./usr/bin/syncscope", "./lib/systemd/system/syncscope.service", "./etc/syncscope/config.yaml",
                 "./usr/share/syncscope/dashboards/syncscope-overview.json",
                 "./usr/share/syncscope/rules/syncscope.rules.yaml",
                 "./usr/share/syncscope/provisioning/dashboards.yaml"):
        assert path in contents, f"{path} missing from the package:\n{contents}"
    assert "root/root" in contents
    # Unpacked, it is the PREFIX=/usr tree.
    unpacked = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "--extract", str(debs[0]), str(unpacked)], check=True)
    check_tree(unpacked, "/usr", stripped=True)
