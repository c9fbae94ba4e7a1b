"""The host's end of a fed card's chardev (lab/feeder.py) against a real unix socket
playing QEMU's listening end, and the guest's side of the request (lab/in_guest.feed)."""
import socket
import threading

from pyvfio.lab import feeder, in_guest, qemu
from pyvfio.lab.config import LabConfig


def test_the_guest_asks_and_the_host_writes_every_byte(tmp_path, monkeypatch):
    (tmp_path / "lab.json").write_text('{"cards": ["edu", "pci-serial"]}')
    (tmp_path / "cards.txt").write_text("edu 0000:00:10.0 1\npci-serial 0000:00:11.0 2\n")
    (tmp_path / "guest.txt").write_text("release 6.12\n")
    monkeypatch.setenv("PYVFIO_LAB", "1")
    monkeypatch.setenv("PYVFIO_LAB_DIR", str(tmp_path))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(qemu.feed_socket(tmp_path, 1)))
    server.listen(1)
    got = bytearray()

    def card():                         # QEMU's end: takes bytes, sends some back
        conn, _ = server.accept()
        conn.sendall(b"transmitted by the card")
        while len(got) < 700:
            data = conn.recv(64)        # a small receive buffer: the writer waits
            if not data:
                break
            got.extend(data)
        conn.close()

    t = threading.Thread(target=card)
    t.start()
    cfg = LabConfig(arch="x86_64", cards=("edu", "pci-serial"), command=("true",))
    with feeder.Feeders(cfg, tmp_path) as f:
        assert [x.i for x in f.feeders] == [1]
        assert in_guest.feed("0000:00:11.0", 700, chunk=100, timeout=20) == 700
    t.join(5)
    server.close()
    assert bytes(got) == feeder.pattern(700)
    assert not feeder.request_path(tmp_path, 1).exists()
    assert not feeder.done_path(tmp_path, 1).exists()


def test_no_card_listening_is_an_answer_not_a_hang(tmp_path, monkeypatch):
    (tmp_path / "lab.json").write_text('{}')
    (tmp_path / "cards.txt").write_text("pci-serial 0000:00:10.0 1\n")
    (tmp_path / "guest.txt").write_text("")
    monkeypatch.setenv("PYVFIO_LAB", "1")
    monkeypatch.setenv("PYVFIO_LAB_DIR", str(tmp_path))
    cfg = LabConfig(arch="x86_64", cards=("pci-serial",), command=("true",))
    with feeder.Feeders(cfg, tmp_path):
        try:
            in_guest.feed("0000:00:10.0", 10, timeout=20)
        except RuntimeError as exc:
            assert "the host's feeder failed: FileNotFoundError" in str(exc)
        else:
            raise AssertionError("a feed with no socket must fail")
