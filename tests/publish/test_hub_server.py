"""tests/hub_server.py against the real huggingface_hub client: uploads, listings,
downloads, HfFileSystem / fsspec reads, auth, and what the client does on failures."""
from __future__ import annotations

import os

# Before anything imports huggingface_hub (it reads this once, in huggingface_hub.constants).
# Other test modules may have imported it already during collection: point_client_at (used
# by the hub_server fixture) patches the constant as well.
os.environ["HF_HUB_DISABLE_XET"] = "1"

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import hub_server as hub_server_module
import pytest
import requests
from hub_server import HubServer, point_client_at
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    constants,
    hf_hub_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils._runtime import is_xet_available
from huggingface_hub.utils.sha import git_hash

hub_server = hub_server_module.hub_server  # the fixture, for this module

REPO = "owner/name"
SMALL = b'{"id": 1, "title": "a paper"}\n' * 20  # regular
BIG = hashlib.sha256(b"seed").digest() * ((1 << 20) // 32 + 1)  # just over 1 MiB -> LFS
SEEDED = bytes(range(256)) * 8  # 2048 bytes


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "out"
    (root / "vectors").mkdir(parents=True)
    (root / "manifest.json").write_bytes(SMALL)
    (root / "vectors" / "shard-0.bin").write_bytes(BIG)
    return root


def api_for(hub, token=False) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def without_gitattributes(files: dict) -> dict:
    return {path: data for path, data in files.items() if path != ".gitattributes"}


def upload(api, folder):
    return api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=folder,
                             commit_message="publish")


# --------------------------------------------------------------------------- uploads


def test_create_repo_and_upload_folder_roundtrip(hub_server, folder):
    api = api_for(hub_server)
    url = api.create_repo(REPO, repo_type="dataset", exist_ok=True)
    assert url.repo_id == REPO and url.repo_type == "dataset"
    api.create_repo(REPO, repo_type="dataset", exist_ok=True)  # 409, handled by the client
    assert [r.status for r in hub_server.requests_of("create_repo")] == [200, 409]

    info = upload(api, folder)

    assert without_gitattributes(hub_server.files(REPO)) == {"manifest.json": SMALL,
                                                             "vectors/shard-0.bin": BIG}
    commits = hub_server.commits(REPO)
    assert [c.title for c in commits] == ["initial commit", "publish"]
    assert info.oid == commits[-1].oid
    assert sorted(commits[-1].changed) == ["manifest.json", "vectors/shard-0.bin"]
    # the big file went through LFS (one PUT of exactly its bytes), the small one inline
    assert hub_server.lfs_bytes_uploaded() == len(BIG)
    payload = [json.loads(line) for line in hub_server.requests_of("commit")[0].body.splitlines()]
    assert {(p["key"], p["value"].get("path")) for p in payload} == {
        ("header", None), ("file", "manifest.json"), ("lfsFile", "vectors/shard-0.bin")}
    # Xet is off in this process: the client offers only the LFS transfers
    assert not is_xet_available()
    assert hub_server.requests_of("lfs_batch")[0].json()["transfers"] == ["basic", "multipart"]


def test_identical_commit_is_skipped_and_changed_commit_resends_everything(hub_server, folder):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    upload(api, folder)
    hub_server.requests.clear()

    upload(api, folder)  # same bytes again

    # preupload answers each path's oid (git sha1 / sha256) and the client drops the unchanged
    # files; with nothing left it makes no commit at all (it reads repo_info instead)
    preupload = hub_server.requests_of("preupload")
    assert len(preupload) == 1
    assert [r.kind for r in hub_server.requests] == ["preupload", "lfs_batch", "repo_info"]
    assert hub_server.lfs_bytes_uploaded() == 0
    assert len(hub_server.commits(REPO)) == 2

    # one file changed: a commit, still no LFS bytes, but the payload carries every file again
    (folder / "manifest.json").write_bytes(SMALL + b"{}\n")
    hub_server.requests.clear()
    upload(api, folder)
    assert hub_server.lfs_bytes_uploaded() == 0
    last = hub_server.commits(REPO)[-1]
    assert last.changed == ["manifest.json"]
    assert sorted(last.written) == ["manifest.json", "vectors/shard-0.bin"]


def test_preupload_oids_are_what_the_client_compares(hub_server, folder):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    upload(api, folder)
    ops = [CommitOperationAdd("manifest.json", SMALL),
           CommitOperationAdd("vectors/shard-0.bin", BIG),
           CommitOperationAdd("new.txt", b"x")]
    api.preupload_lfs_files(REPO, ops, repo_type="dataset")
    assert [op._upload_mode for op in ops] == ["regular", "lfs", "regular"]
    assert ops[0]._remote_oid == git_hash(SMALL) == ops[0]._local_oid
    assert ops[1]._remote_oid == hashlib.sha256(BIG).hexdigest() == ops[1]._local_oid
    assert ops[2]._remote_oid is None


def test_a_rejected_commit_applies_nothing(hub_server):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    before = hub_server.files(REPO)
    operations = [CommitOperationAdd("new.txt", b"new"), CommitOperationDelete("missing.txt")]
    with pytest.raises(EntryNotFoundError):
        api.create_commit(REPO, operations, commit_message="bad", repo_type="dataset")
    assert hub_server.files(REPO) == before and len(hub_server.commits(REPO)) == 1


def test_parent_commit_must_be_the_head(hub_server):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    first = hub_server.commits(REPO)[0].oid
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=REPO, repo_type="dataset",
                    parent_commit=first)
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=b"2", path_in_repo="a.txt", repo_id=REPO,
                        repo_type="dataset", parent_commit=first)
    assert err.value.response.status_code == 412
    assert hub_server.files(REPO)["a.txt"] == b"1"


# --------------------------------------------------------------------------- listings and reads


def test_get_paths_info_and_tree_report_blob_ids_and_lfs_sha256(hub_server, folder):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    upload(api, folder)

    small, big, directory = api.get_paths_info(
        REPO, ["manifest.json", "vectors/shard-0.bin", "vectors"], repo_type="dataset")
    assert (small.path, small.size, small.blob_id, small.lfs) == (
        "manifest.json", len(SMALL), git_hash(SMALL), None)
    assert big.size == len(BIG) and big.lfs is not None
    assert big.lfs.sha256 == hashlib.sha256(BIG).hexdigest() and big.lfs.size == len(BIG)
    # the pointer's blob id, as on the Hub
    assert big.lfs.pointer_size > 0 and big.blob_id != git_hash(BIG)
    assert directory.path == "vectors" and directory.tree_id

    tree = {e.path: e for e in api.list_repo_tree(REPO, repo_type="dataset", recursive=True)}
    assert set(tree) == {".gitattributes", "manifest.json", "vectors", "vectors/shard-0.bin"}
    assert tree["vectors/shard-0.bin"].lfs.sha256 == big.lfs.sha256
    assert set(api.list_repo_files(REPO, repo_type="dataset")) == {
        ".gitattributes", "manifest.json", "vectors/shard-0.bin"}


def test_tree_pagination_follows_link_headers():
    with HubServer(tree_page_size=2) as hub:
        for i in range(5):
            hub.add_file(REPO, f"d/f{i}.txt", b"%d" % i)
        paths = [e.path for e in api_for(hub).list_repo_tree(REPO, repo_type="dataset",
                                                             recursive=True)]
        assert sorted(paths) == [".gitattributes", "d"] + [f"d/f{i}.txt" for i in range(5)]
        assert len(hub.requests_of("tree")) == 4  # 7 entries, 2 per page


def test_hf_hub_download_returns_identical_bytes(hub_server, folder, tmp_path):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    upload(api, folder)
    head = hub_server.commits(REPO)[-1].oid
    for filename, data in [("manifest.json", SMALL), ("vectors/shard-0.bin", BIG)]:
        path = hf_hub_download(REPO, filename, repo_type="dataset", cache_dir=tmp_path / "cache",
                               token=False)
        assert Path(path).read_bytes() == data
        assert f"snapshots/{head}/" in path.replace(os.sep, "/")
    resolves = hub_server.requests_of("resolve")
    assert [(r.method, r.status) for r in resolves] == [("HEAD", 200), ("GET", 200), ("HEAD", 302)]
    assert [(r.method, r.status) for r in hub_server.requests_of("lfs_download")] == [("GET", 200)]


def test_model_repos_work_too(hub_server, tmp_path):
    api = api_for(hub_server)
    api.create_repo("owner/model")
    api.upload_file(path_or_fileobj=b"weights", path_in_repo="w.bin", repo_id="owner/model")
    assert hub_server.files("owner/model", repo_type="model")["w.bin"] == b"weights"
    path = hf_hub_download("owner/model", "w.bin", cache_dir=tmp_path, token=False)
    assert Path(path).read_bytes() == b"weights"


@pytest.mark.parametrize("lfs", [False, True], ids=["regular", "lfs"])
def test_hffs_ranged_read_issues_a_range_request(hub_server, lfs):
    hub_server.add_file(REPO, "dir/data.jsonl", SEEDED, lfs=lfs)
    fs = HfFileSystem(endpoint=hub_server.url, token=False)
    path = f"datasets/{REPO}/dir/data.jsonl"
    assert fs.info(path)["size"] == len(SEEDED)

    hub_server.requests.clear()
    with fs.open(path, "rb", cache_type="none") as f:
        f.seek(100)
        assert f.read(100) == SEEDED[100:200]
    serving = hub_server.requests_of("lfs_download" if lfs else "resolve")
    assert [(r.headers.get("range"), r.status) for r in serving] == [("bytes=100-199", 206)]

    assert fs.cat_file(path, start=100, end=200) == SEEDED[100:200]
    with fs.open(path, "rb") as f:
        assert f.read() == SEEDED


def test_hffs_ls_glob_info_exists(hub_server):
    for name in ["dir/a.jsonl", "dir/b.jsonl", "dir/sub/c.jsonl", "other.txt"]:
        hub_server.add_file(REPO, name, SEEDED)
    fs = HfFileSystem(endpoint=hub_server.url, token=False)
    root = f"datasets/{REPO}"
    assert fs.glob(f"{root}/dir/*.jsonl") == [f"{root}/dir/a.jsonl", f"{root}/dir/b.jsonl"]
    assert fs.glob(f"{root}/**/*.jsonl") == [f"{root}/dir/a.jsonl", f"{root}/dir/b.jsonl",
                                             f"{root}/dir/sub/c.jsonl"]
    assert sorted(fs.ls(f"{root}/dir", detail=False)) == [f"{root}/dir/a.jsonl",
                                                          f"{root}/dir/b.jsonl",
                                                          f"{root}/dir/sub"]
    assert fs.info(f"{root}/dir/sub")["type"] == "directory"
    assert fs.exists(f"{root}/other.txt") and not fs.exists(f"{root}/missing.txt")
    assert not fs.exists("datasets/owner/no-such-repo/x.txt")


def test_fsspec_open_in_a_subprocess_with_hf_endpoint(hub_server):
    hub_server.add_file(REPO, "file.jsonl", SEEDED)
    script = textwrap.dedent(f"""
        import json, fsspec
        from huggingface_hub import constants
        from huggingface_hub.utils._runtime import is_xet_available
        with fsspec.open("hf://datasets/{REPO}/file.jsonl", "rb") as f:
            whole = f.read()
        fs, path = fsspec.core.url_to_fs("hf://datasets/{REPO}/file.jsonl")
        part = fs.cat_file(path, start=100, end=200)
        print(json.dumps({{"whole": whole.hex(), "part": part.hex(), "endpoint": constants.ENDPOINT,
                          "xet": is_xet_available()}}))
    """)
    env = {**os.environ, "HF_ENDPOINT": hub_server.url, "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert bytes.fromhex(out["whole"]) == SEEDED and bytes.fromhex(out["part"]) == SEEDED[100:200]
    assert out["endpoint"] == hub_server.url and out["xet"] is False
    assert any(r.headers.get("range", "").startswith("bytes=100-")
               for r in hub_server.requests_of("resolve"))


# --------------------------------------------------------------------------- failures


def test_failed_commit_is_not_retried_by_the_client_and_changes_nothing(hub_server):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=REPO, repo_type="dataset")
    before = hub_server.files(REPO), len(hub_server.commits(REPO))
    hub_server.requests.clear()
    hub_server.fail_next(2, "commit")

    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=REPO,
                        repo_type="dataset")
    assert err.value.response.status_code == 500
    assert len(hub_server.requests_of("commit")) == 1  # the client did not retry by itself
    assert (hub_server.files(REPO), len(hub_server.commits(REPO))) == before

    with pytest.raises(HfHubHTTPError):  # the second injected failure
        api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=REPO,
                        repo_type="dataset")
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id=REPO,
                    repo_type="dataset")
    assert [r.status for r in hub_server.requests_of("commit")] == [500, 500, 200]
    assert hub_server.files(REPO)["a.txt"] == b"v2"


def test_dropped_commit_connection_is_not_retried(hub_server):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    before = hub_server.files(REPO)

    hub_server.drop_next(1, "commit")
    with pytest.raises(requests.exceptions.ConnectionError):
        api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=REPO,
                        repo_type="dataset")
    assert len(hub_server.requests_of("commit")) == 1 and hub_server.files(REPO) == before

    # the commit lands but its answer is lost: same error for the client, different server state
    hub_server.drop_next(1, "commit", apply=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=REPO,
                        repo_type="dataset")
    assert len(hub_server.requests_of("commit")) == 2 and hub_server.files(REPO)["a.txt"] == b"v1"


@pytest.mark.parametrize("kind", ["preupload", "lfs_batch"])
def test_preupload_and_lfs_batch_5xx_are_not_retried(hub_server, kind):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    hub_server.fail_next(1, kind, status=503)
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(path_or_fileobj=BIG, path_in_repo="big.bin", repo_id=REPO,
                        repo_type="dataset")
    assert err.value.response.status_code == 503
    assert len(hub_server.requests_of(kind)) == 1
    assert hub_server.requests_of("commit") == [] and hub_server.lfs_bytes_uploaded() == 0
    assert "big.bin" not in hub_server.files(REPO)


def test_lfs_upload_5xx_and_dropped_connection_are_retried_by_the_client(hub_server):
    api = api_for(hub_server)
    api.create_repo(REPO, repo_type="dataset")
    hub_server.fail_next(1, "lfs_upload", status=500)
    hub_server.drop_next(1, "lfs_upload")

    api.upload_file(path_or_fileobj=BIG, path_in_repo="big.bin", repo_id=REPO, repo_type="dataset")

    # http_backoff: 1 s, then 2 s, between the attempts
    assert [r.status for r in hub_server.requests_of("lfs_upload")] == [500, None, 200]
    assert hub_server.lfs_bytes_uploaded() == len(BIG)
    assert hub_server.files(REPO)["big.bin"] == BIG


def test_download_5xx_is_retried_by_the_client(hub_server, tmp_path):
    hub_server.add_file(REPO, "a.txt", SMALL)
    hub_server.fail_next(1, "resolve", status=502)
    path = hf_hub_download(REPO, "a.txt", repo_type="dataset", cache_dir=tmp_path, token=False)
    assert Path(path).read_bytes() == SMALL
    assert [(r.method, r.status) for r in hub_server.requests_of("resolve")] == [
        ("HEAD", 502), ("HEAD", 200), ("GET", 200)]


def test_fault_by_path_regex(hub_server):
    hub_server.add_file(REPO, "a.txt", SMALL)
    hub_server.fail_next(1, r"/paths-info/", status=503)
    with pytest.raises(HfHubHTTPError) as err:
        api_for(hub_server).get_paths_info(REPO, ["a.txt"], repo_type="dataset")
    assert err.value.response.status_code == 503
    assert api_for(hub_server).get_paths_info(REPO, ["a.txt"],
                                              repo_type="dataset")[0].size == len(SMALL)


# --------------------------------------------------------------------------- auth


def test_writes_and_private_reads_need_the_token(monkeypatch, tmp_path):
    with HubServer(token="hf_secret") as hub:
        point_client_at(hub, monkeypatch)
        anonymous, wrong, owner = api_for(hub), api_for(hub, "hf_wrong"), api_for(hub, "hf_secret")

        with pytest.raises(HfHubHTTPError) as err:
            anonymous.create_repo(REPO, repo_type="dataset", private=True)
        assert err.value.response.status_code == 401 and "error" in err.value.response.json()
        assert not hub.has_repo(REPO)

        owner.create_repo(REPO, repo_type="dataset", private=True)
        for api in (anonymous, wrong):
            with pytest.raises(HfHubHTTPError) as err:
                api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO,
                                repo_type="dataset")
            assert err.value.response.status_code == 401
        assert "Invalid credentials" in str(err.value)
        assert hub.requests_of("commit") == []

        owner.upload_file(path_or_fileobj=SEEDED, path_in_repo="t.parquet", repo_id=REPO,
                          repo_type="dataset")
        assert hub.files(REPO)["t.parquet"] == SEEDED
        writes = [r for r in hub.requests
                  if r.kind in ("preupload", "lfs_batch", "lfs_verify", "commit")
                  and r.status == 200]
        assert {r.kind for r in writes} == {"preupload", "lfs_batch", "lfs_verify", "commit"}
        assert all(r.headers.get("authorization") == "Bearer hf_secret" for r in writes)
        # the LFS PUT goes to the signed href without the token, like a presigned storage URL
        (put,) = hub.requests_of("lfs_upload")
        assert put.status == 200 and "authorization" not in put.headers

        with pytest.raises(RepositoryNotFoundError):
            anonymous.dataset_info(REPO)
        assert owner.dataset_info(REPO).private is True
        assert not HfFileSystem(endpoint=hub.url, token=False).exists(f"datasets/{REPO}/t.parquet")
        fs = HfFileSystem(endpoint=hub.url, token="hf_secret")
        assert fs.cat_file(f"datasets/{REPO}/t.parquet", start=100, end=200) == SEEDED[100:200]
        path = hf_hub_download(REPO, "t.parquet", repo_type="dataset", cache_dir=tmp_path,
                               token="hf_secret")
        assert Path(path).read_bytes() == SEEDED
        assert constants.ENDPOINT == hub.url
        assert not hub.errors
