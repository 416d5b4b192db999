"""The status page's files: the packaged ones are there, answered by name with type and ETag."""

from __future__ import annotations

import re

import pytest

from uploader.api.page import INDEX, Assets, not_modified
from uploader.api.request import ApiError
from uploader.errors import LocalIOError


def test_the_packaged_page_references_only_files_it_has() -> None:
    assets = Assets()
    assert {"index.html", "status.js", "status.css"} <= set(assets.names)
    page = assets.get(None)
    assert page.name == INDEX and page.content_type == "text/html"
    html = page.body.decode()
    referenced = set(re.findall(r'(?:src|href)="/static/([^"]+)"', html))
    assert referenced == {"status.js", "status.css"}
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)  # nothing from elsewhere
    js = assets.get("status.js").body.decode()
    assert "http://" not in js.replace("http://www.w3.org/2000/svg", "") and "https://" not in js
    for element_id in (
        "upload-form",
        "upload-percent",
        "upload-cap",
        "chart",
        "transfers",
        "servers",
        "config",
    ):
        assert f'id="{element_id}"' in html and element_id in js


def test_assets_by_name_type_and_etag() -> None:
    assets = Assets({"index.html": b"<p>hi</p>", "a.js": b"1", "b.css": b"x{}", "notes.txt": b"skip"})
    assert assets.names == ["a.js", "b.css", "index.html"]  # only the types we serve
    js = assets.get("a.js")
    assert js.content_type == "text/javascript" and js.body == b"1"
    assert js.etag != assets.get("b.css").etag and js.etag.startswith('"')
    assert not_modified(js, js.etag) and not_modified(js, f'W/{js.etag}, "other"') and not_modified(js, "*")
    assert not not_modified(js, None) and not not_modified(js, '"other"')
    with pytest.raises(ApiError) as info:
        assets.get("notes.txt")
    assert info.value.status == 404 and "a.js" in str(info.value)


def test_a_page_without_its_index_is_an_installation_error() -> None:
    with pytest.raises(LocalIOError, match=r"index\.html"):
        Assets({"a.js": b"1"})
