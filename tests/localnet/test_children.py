"""Children GhostPay starts: the installed package whatever the current folder holds; they end with their parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ghostpay.localnet.process import LocalnetProcess


def test_a_clone_named_ghostpay_in_the_current_folder_is_not_imported(tmp_path: Path, monkeypatch) -> None:
    clone = tmp_path / "ghostpay"
    clone.mkdir()
    (clone / "__init__.py").write_text('raise ImportError("the clone in the current folder was imported")\n')
    monkeypatch.chdir(tmp_path)
    plain = subprocess.run([sys.executable, "-m", "ghostpay.localnet", "--help"], capture_output=True, text=True)
    assert "the clone in the current folder was imported" in plain.stderr  # what `python -m` alone does here
    net = LocalnetProcess(Path("ledger"), home=tmp_path / "home").start()  # a relative ledger: still this folder's
    try:
        assert net.rpc("getHealth")["result"] == "ok"
        assert (tmp_path / "ledger").is_dir()
    finally:
        net.stop()


def test_an_attached_localnet_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = Path(__file__).with_name("spawn_and_wait.py")
    parent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "ledger")], stdout=subprocess.PIPE, text=True
    )
    child_pid = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child_pid, os.WNOHANG)
    status = Path(f"/proc/{child_pid}/stat")
    assert not status.exists() or status.read_text().split()[2] == "Z"


def test_a_port_left_in_time_wait_by_a_killed_server_is_free(tmp_path: Path) -> None:
    import socket

    from ghostpay.cli.localnet import port_in_use

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert port_in_use("127.0.0.1", port)  # listening
    accepted.close()  # the server side closes first: its end of the connection waits in TIME-WAIT
    client.close()
    server.close()
    with socket.socket() as plain:  # what the probe did: refused for about a minute
        try:
            plain.bind(("127.0.0.1", port))
            plain_refused = False
        except OSError:
            plain_refused = True
    assert plain_refused
    assert not port_in_use("127.0.0.1", port)
