"""mlnb.data.fetch against a real HTTP server on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from mlnb import cli
from mlnb.data.fetch import ALREADY_PRESENT, FetchResult, fetch, normalise_md5, parse_source
from mlnb.errors import ConfigError, DataError

BODY = bytes(range(256)) * 400  # 100 KiB, not all one value
BODY_MD5 = hashlib.md5(BODY).hexdigest()  # noqa: S324
FAST = {"timeout": 5.0, "backoff": 0.01, "progress": False}


def _leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_good_download_is_verified(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    dest = tmp_path / "out" / "data.bin"
    result = fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5.upper(), **FAST)
    assert result == FetchResult(dest, BODY_MD5, file_server.url("/data.bin"))
    assert dest.read_bytes() == BODY
    assert _leftovers(dest.parent) == ["data.bin"]


def test_checksum_mismatch_names_everything_and_leaves_nothing(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY[:-1] + b"!"
    wrong_md5 = hashlib.md5(file_server.files["/data.bin"]).hexdigest()  # noqa: S324
    dest = tmp_path / "data.bin"
    with pytest.raises(DataError) as caught:
        fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST)
    message = str(caught.value)
    for expected in ("data.bin", file_server.url("/data.bin"), BODY_MD5, wrong_md5, "checksum mismatch"):
        assert expected in message
    assert _leftovers(tmp_path) == []
    assert len(file_server.requests_for("/data.bin")) == 1  # a mismatch is not retried on the same URL


def test_an_empty_download_is_never_published(file_server, tmp_path):
    """Without an md5 to check, an empty body used to become an empty file under the final name."""
    file_server.files["/empty.bin"] = b""
    with pytest.raises(DataError, match=r"empty\.bin: it sent an empty file"):
        fetch(file_server.url("/empty.bin"), tmp_path / "data.bin", **FAST)
    assert _leftovers(tmp_path) == []


def test_cut_connection_is_resumed_then_verified(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    file_server.cut_first["/data.bin"] = 2
    result = fetch(file_server.url("/data.bin"), tmp_path / "data.bin", md5=BODY_MD5, retries=2, **FAST)
    assert result.path.read_bytes() == BODY
    # first request gets half; the second resumes there, is cut again (a quarter more); the third finishes
    half = len(BODY) // 2
    assert file_server.requests_for("/data.bin") == [None, f"bytes={half}-", f"bytes={half + (len(BODY) - half) // 2}-"]
    assert _leftovers(tmp_path) == ["data.bin"]


def test_cut_connection_restarts_when_server_ignores_ranges(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    file_server.cut_first["/data.bin"] = 1
    file_server.ranges = False
    result = fetch(file_server.url("/data.bin"), tmp_path / "data.bin", md5=BODY_MD5, retries=1, **FAST)
    assert result.path.read_bytes() == BODY
    assert len(file_server.requests_for("/data.bin")) == 2


def test_file_changed_between_attempts_is_fetched_whole_again(file_server, tmp_path):
    """The resumed request carries If-Range; the server sees a different file and sends all of it."""
    new_body = BODY[::-1]
    file_server.files["/data.bin"] = BODY
    file_server.cut_first["/data.bin"] = 1

    def change_before_second_request(path):
        if len(file_server.requests) == 2:
            file_server.files[path] = new_body

    file_server.on_request = change_before_second_request
    result = fetch(file_server.url("/data.bin"), tmp_path / "data.bin",
                   md5=hashlib.md5(new_body).hexdigest(), retries=1, **FAST)  # noqa: S324
    assert result.path.read_bytes() == new_body
    assert file_server.requests_for("/data.bin") == [None, f"bytes={len(BODY) // 2}-"]


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - the test server's ETag


def test_cut_every_time_gives_up_and_the_next_run_resumes(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    file_server.cut_first["/data.bin"] = 3
    dest = tmp_path / "data.bin"
    with pytest.raises(DataError, match=r"gave up after 3 attempt"):
        fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, retries=2, **FAST)
    assert len(file_server.requests_for("/data.bin")) == 3
    # The bytes received are kept, with a record of where they came from, but not under the final name.
    assert _leftovers(tmp_path) == [".data.bin.part", ".data.bin.part.json"]
    record = json.loads((tmp_path / ".data.bin.part.json").read_text())
    assert record == {"source": file_server.url("/data.bin"), "validator": _etag(BODY), "size": len(BODY)}
    kept = (tmp_path / ".data.bin.part").stat().st_size
    assert 0 < kept < len(BODY)

    result = fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, retries=0, **FAST)  # a later run
    assert result.path.read_bytes() == BODY
    assert file_server.requests_for("/data.bin")[-1] == f"bytes={kept}-"
    assert _leftovers(tmp_path) == ["data.bin"]


def _leave_partial(dest: Path, data: bytes, source: str, validator: str) -> None:
    """What an interrupted earlier run leaves beside ``dest``."""
    dest.with_name(f".{dest.name}.part").write_bytes(data)
    record = {"source": source, "validator": validator, "size": len(BODY)}
    dest.with_name(f".{dest.name}.part.json").write_text(json.dumps(record))


def test_a_complete_partial_is_verified_without_downloading_again(file_server, tmp_path):
    """A run stopped after the last byte (while checking the md5) must not cost the whole download again."""
    file_server.files["/data.bin"] = BODY
    dest = tmp_path / "data.bin"
    _leave_partial(dest, BODY, file_server.url("/data.bin"), _etag(BODY))
    assert fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST).path.read_bytes() == BODY
    assert file_server.requests == []


def test_partial_from_another_source_is_never_spliced_on(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    dest = tmp_path / "data.bin"
    _leave_partial(dest, b"\xff" * 1000, file_server.url("/other.bin"), _etag(BODY))
    assert fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST).path.read_bytes() == BODY
    assert file_server.requests_for("/data.bin") == [None]  # started from byte 0
    _leave_partial(dest, b"\xff" * 1000, file_server.url("/data.bin"), _etag(BODY))
    dest.with_name(".data.bin.part.json").write_text("[1, 2]")  # a record that is not one
    dest.unlink()
    assert fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST).path.read_bytes() == BODY
    assert file_server.requests_for("/data.bin") == [None, None]


def test_partial_of_a_file_the_server_changed_is_fetched_whole(file_server, tmp_path):
    new_body = BODY[::-1]
    file_server.files["/data.bin"] = new_body
    dest = tmp_path / "data.bin"
    _leave_partial(dest, BODY[:1000], file_server.url("/data.bin"), _etag(BODY))
    result = fetch(file_server.url("/data.bin"), dest, md5=hashlib.md5(new_body).hexdigest(), **FAST)  # noqa: S324
    assert result.path.read_bytes() == new_body  # If-Range did not match: the whole new file
    assert file_server.requests_for("/data.bin") == ["bytes=1000-"]


def test_download_killed_with_sigkill_resumes_in_the_next_run(tmp_path, file_server):
    import signal
    import subprocess
    import sys
    import time

    file_server.files["/data.bin"] = BODY
    file_server.stall_midway["/data.bin"] = 30.0
    dest = tmp_path / "data.bin"
    partial = tmp_path / ".data.bin.part"
    process = subprocess.Popen([sys.executable, "-m", "mlnb.cli", "fetch", "--url", file_server.url("/data.bin"),
                                "--md5", BODY_MD5, "--out", str(dest), "--retries", "0", "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (partial.is_file() and partial.stat().st_size >= len(BODY) // 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=15)
    assert partial.stat().st_size == len(BODY) // 2 and not dest.exists()

    file_server.stall_midway.clear()
    assert fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST).path.read_bytes() == BODY
    assert file_server.requests_for("/data.bin")[-1] == f"bytes={len(BODY) // 2}-"
    assert _leftovers(tmp_path) == ["data.bin"]


def test_server_error_is_retried_then_mirror_used(file_server, tmp_path):
    file_server.status["/broken.bin"] = 500
    file_server.files["/data.bin"] = BODY
    result = fetch(file_server.url("/broken.bin"), tmp_path / "data.bin", md5=BODY_MD5,
                   mirrors=[file_server.url("/data.bin")], retries=2, **FAST)
    assert result.source_used == file_server.url("/data.bin")
    assert len(file_server.requests_for("/broken.bin")) == 3


def test_dead_primary_falls_back_to_mirror_without_retrying_a_404(file_server, tmp_path):
    file_server.files["/mirror/data.bin"] = BODY
    result = fetch(file_server.url("/dead/data.bin"), tmp_path / "data.bin", md5=BODY_MD5,
                   mirrors=[file_server.url("/mirror/data.bin")], **FAST)
    assert result.source_used == file_server.url("/mirror/data.bin")
    assert result.path.read_bytes() == BODY
    assert len(file_server.requests_for("/dead/data.bin")) == 1


def test_stalled_server_times_out_then_mirror_used(file_server, tmp_path):
    file_server.files["/slow.bin"] = BODY
    file_server.stall["/slow.bin"] = 1.0
    file_server.files["/data.bin"] = BODY
    options = {**FAST, "timeout": 0.2}
    result = fetch(file_server.url("/slow.bin"), tmp_path / "data.bin", md5=BODY_MD5,
                   mirrors=[file_server.url("/data.bin")], retries=0, **options)
    assert result.source_used == file_server.url("/data.bin")


def test_all_sources_dead_lists_each_with_its_error(file_server, tmp_path):
    file_server.status["/error.bin"] = 503
    sources = [file_server.url("/gone.bin"), file_server.url("/error.bin"), file_server.url("/forbidden.bin")]
    file_server.status["/forbidden.bin"] = 403
    with pytest.raises(DataError) as caught:
        fetch(sources[0], tmp_path / "data.bin", md5=BODY_MD5, mirrors=sources[1:], retries=1, **FAST)
    message = str(caught.value)
    assert "3 source(s)" in message
    assert f"{sources[0]}: HTTP 404" in message
    assert f"{sources[1]}: HTTP 503" in message
    assert f"{sources[2]}: HTTP 403" in message
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_local_source_is_copied_and_verified(tmp_path, as_url):
    source = tmp_path / "source" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(BODY)
    text = source.as_uri() if as_url else str(source)
    dest = tmp_path / "out" / "data.bin"
    result = fetch(text, dest, md5=BODY_MD5, **FAST)
    assert result == FetchResult(dest, BODY_MD5, text)
    assert dest.read_bytes() == BODY
    assert dest.stat().st_ino != source.stat().st_ino  # a copy: touching dest must not touch the source
    assert _leftovers(dest.parent) == ["data.bin"]


def test_local_source_with_wrong_md5_keeps_the_source_and_writes_nothing(tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(BODY)
    dest = tmp_path / "out" / "data.bin"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(str(source), dest, md5="0" * 32, **FAST)
    assert source.read_bytes() == BODY
    assert _leftovers(dest.parent) == []


def test_verified_existing_file_is_kept_without_a_request(file_server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(BODY)
    result = fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST)
    assert result == FetchResult(dest, BODY_MD5, ALREADY_PRESENT)
    assert file_server.requests == []


def test_existing_file_with_wrong_md5_is_replaced(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    result = fetch(file_server.url("/data.bin"), dest, md5=BODY_MD5, **FAST)
    assert result.source_used == file_server.url("/data.bin")
    assert dest.read_bytes() == BODY


def test_existing_file_stays_until_a_verified_replacement_exists(file_server, tmp_path):
    """It used to be deleted before the fetch, so a dead source left the user with nothing."""
    file_server.files["/data.bin"] = BODY[:-1] + b"!"  # the new bytes fail their checksum
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"the user's only copy")
    for url in (file_server.url("/gone.bin"), file_server.url("/data.bin")):
        with pytest.raises(DataError, match=r"the existing .*data\.bin was left as it was"):
            fetch(url, dest, md5=BODY_MD5, **FAST)
        assert dest.read_bytes() == b"the user's only copy"
    assert _leftovers(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_output_that_is_the_local_source_is_refused(tmp_path, monkeypatch, spelling):
    """Fetching a local file onto itself used to delete it when its checksum did not match."""
    source = tmp_path / "data.bin"
    source.write_bytes(b"the user's only copy")
    monkeypatch.chdir(tmp_path)
    dest = {"same": source, "relative": Path("sub/../data.bin"), "symlink": tmp_path / "link.bin"}[spelling]
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.bin").symlink_to(source)
    with pytest.raises(ConfigError, match=r"--out .*\.bin is the input --url itself"):
        fetch(str(source), dest, md5=BODY_MD5, **FAST)
    assert source.read_bytes() == b"the user's only copy"


def test_missing_local_source_is_an_error_even_with_the_output_in_place(tmp_path):
    """A source that vanished after a first run used to be ignored (exit 0, the old file reused)."""
    dest = tmp_path / "data.bin"
    dest.write_bytes(BODY)
    with pytest.raises(DataError, match=r"gone\.bin: configured source file is missing"):
        fetch(str(tmp_path / "gone.bin"), dest, md5=BODY_MD5, **FAST)
    with pytest.raises(DataError, match=r"gone\.bin: configured source file is missing"):
        fetch(str(dest), tmp_path / "copy.bin", mirrors=[str(tmp_path / "gone.bin")], **FAST)  # a mirror too


@pytest.mark.parametrize(("options", "message"), [
    ({"timeout": 0}, r"timeout \(--timeout\) must be > 0 seconds, got 0"),
    ({"retries": -1}, r"retries \(--retries\) must be >= 0, got -1"),
])
def test_bad_options_are_refused_before_anything_is_fetched(file_server, tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        fetch(file_server.url("/data.bin"), tmp_path / "data.bin", **{**FAST, **options})
    assert file_server.requests == []


def test_without_md5_the_checksum_is_computed_and_flagged(file_server, tmp_path, caplog):
    file_server.files["/data.bin"] = BODY
    with caplog.at_level(logging.WARNING, logger="mlnb.data.fetch"):
        result = fetch(file_server.url("/data.bin"), tmp_path / "data.bin", **FAST)
    assert result.md5 == BODY_MD5
    assert "NOT verified" in caplog.text and BODY_MD5 in caplog.text


@pytest.mark.parametrize(("text", "kind", "target"), [
    ("https://example.org/a.tar", "http", "https://example.org/a.tar"),
    ("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", "gdrive", "0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
    ("file:///data/a%20b.zip", "local", "/data/a b.zip"),
    ("results/data/a.zip", "local", "results/data/a.zip"),
])
def test_parse_source(text, kind, target):
    source = parse_source(text)
    assert (source.kind, source.target) == (kind, target)


@pytest.mark.parametrize("text", ["gdrive://", "gdrive://bad id!", "ftp://example.org/a", "http:///nohost",
                                  "file://otherhost/a"])
def test_parse_source_refuses_what_it_cannot_fetch(text):
    with pytest.raises(ConfigError, match="source"):
        parse_source(text)


def test_md5_is_normalised_and_checked():
    assert normalise_md5(None) is None and normalise_md5("") is None
    assert normalise_md5(" MD5:" + BODY_MD5.upper()) == BODY_MD5
    with pytest.raises(ConfigError, match="32 hexadecimal"):
        normalise_md5("abc")


def _fake_gdown(monkeypatch, behaviour):
    """Replace gdown.download with ``behaviour(id, output)`` and record the calls."""
    import gdown

    calls = []

    def download(*, id, output, **kwargs):  # noqa: A002 - gdown's keyword
        calls.append(id)
        return behaviour(id, output)

    monkeypatch.setattr(gdown, "download", download)
    return calls


def test_gdrive_success_is_verified(monkeypatch, tmp_path):
    def write_body(file_id, output):
        Path(f"{output}12345678.part").write_bytes(b"partial left by gdown")  # must be cleaned up
        with open(output, "wb") as handle:
            handle.write(BODY)
        return output

    calls = _fake_gdown(monkeypatch, write_body)
    result = fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", tmp_path / "data.bin", md5=BODY_MD5, **FAST)
    assert calls == ["0B7EVK8r0v71pZjFTYXZWM3FlRnM"]
    assert result.path.read_bytes() == BODY
    assert _leftovers(tmp_path) == ["data.bin"]


def test_gdrive_refusal_becomes_a_clear_error(monkeypatch, tmp_path):
    from gdown.exceptions import FileURLRetrievalError

    def refuse(file_id, output):
        raise FileURLRetrievalError("Cannot retrieve the public link of the file.")

    calls = _fake_gdown(monkeypatch, refuse)
    with pytest.raises(DataError) as caught:
        fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", tmp_path / "data.bin", md5=BODY_MD5, retries=3, **FAST)
    assert "gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM: Google Drive refused" in str(caught.value)
    assert "Cannot retrieve the public link" in str(caught.value)
    assert len(calls) == 1  # a refusal is not retried
    assert _leftovers(tmp_path) == []


def test_gdrive_cut_download_is_retried(monkeypatch, tmp_path):
    from gdown.exceptions import DownloadError

    def cut_once(file_id, output):
        if len(calls) == 1:
            raise DownloadError("the response body ended early")
        with open(output, "wb") as handle:
            handle.write(BODY)
        return output

    calls = _fake_gdown(monkeypatch, cut_once)
    result = fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", tmp_path / "data.bin", md5=BODY_MD5, **FAST)
    assert len(calls) == 2 and result.path.read_bytes() == BODY


def _return_nothing(file_id, output):
    return None


def _write_quota_page(file_id, output):
    Path(output).write_bytes(b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>")
    return output


@pytest.mark.parametrize(("behaviour", "reason"), [
    (_return_nothing, "gdown returned no file"),
    (_write_quota_page, "web page instead of the file"),
])
def test_gdrive_bad_results_become_clear_errors(monkeypatch, tmp_path, behaviour, reason):
    _fake_gdown(monkeypatch, behaviour)
    with pytest.raises(DataError, match=reason):
        fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", tmp_path / "data.bin", **FAST)
    assert _leftovers(tmp_path) == []


def test_cli_fetch_writes_the_file_and_reports_errors_cleanly(file_server, tmp_path):
    file_server.files["/data.bin"] = BODY
    dest = tmp_path / "data.bin"
    common = ["fetch", "--out", str(dest), "--retries", "0", "--timeout", "5", "--no-progress"]
    assert cli.main([*common, "--url", file_server.url("/dead.bin"), "--mirror", file_server.url("/data.bin"),
                     "--md5", BODY_MD5]) == 0
    assert dest.read_bytes() == BODY
    dest.unlink()
    assert cli.main([*common, "--url", file_server.url("/data.bin"), "--md5", "0" * 32]) == 2
    assert not dest.exists()


def test_sigterm_leaves_no_partial_file(tmp_path, file_server):
    import signal
    import subprocess
    import sys
    import time

    file_server.files["/slow.bin"] = b"x" * 1000
    file_server.stall["/slow.bin"] = 20.0
    out = tmp_path / "out" / "slow.bin"
    process = subprocess.Popen([sys.executable, "-m", "mlnb.cli", "fetch", "--url", file_server.url("/slow.bin"),
                                "--out", str(out), "--timeout", "30", "--retries", "0", "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while not (out.parent.exists() and any(out.parent.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(out.parent.iterdir()), "the download never started"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 128 + signal.SIGTERM
    assert list(out.parent.iterdir()) == []


def test_gdrive_partial_is_kept_for_the_next_run(monkeypatch, tmp_path):
    """gdown resumes its own <output>XXXXXXXX.part; a run that gives up must leave it for the next one."""
    from gdown.exceptions import DownloadError

    dest = tmp_path / "data.bin"
    gdown_partial = tmp_path / ".data.bin.partABCDEFGH.part"
    seen_partial = []

    def cut(file_id, output):
        Path(f"{output}ABCDEFGH.part").write_bytes(BODY[:1000])
        raise DownloadError("the response body ended early")

    def finish(file_id, output):
        seen_partial.append(gdown_partial.read_bytes() if gdown_partial.exists() else None)
        Path(output).write_bytes(BODY)
        return output

    _fake_gdown(monkeypatch, cut)
    with pytest.raises(DataError, match="gave up after 1 attempt"):
        fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", dest, md5=BODY_MD5, retries=0, **FAST)
    assert gdown_partial.read_bytes() == BODY[:1000]
    _fake_gdown(monkeypatch, finish)
    assert fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", dest, md5=BODY_MD5, **FAST).path.read_bytes() == BODY
    assert seen_partial == [BODY[:1000]]  # gdown found the bytes of the earlier run
    assert _leftovers(tmp_path) == ["data.bin"]
    # bytes left for another file id are removed, not resumed
    dest.unlink()
    _fake_gdown(monkeypatch, cut)
    with pytest.raises(DataError):
        fetch("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", dest, md5=BODY_MD5, retries=0, **FAST)
    _fake_gdown(monkeypatch, finish)
    fetch("gdrive://1zmsC4yvw-e089uHXj5EdP0BSZ0AlDQRR", dest, md5=BODY_MD5, **FAST)
    assert seen_partial[-1] is None
