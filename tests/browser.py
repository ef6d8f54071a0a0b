"""Opening pages in a real browser: Debian's Chromium, driven by playwright's Python package
(``executable_path``: nothing downloads a browser build).

`problems(page, url)` opens a page and lists what a reader would find broken: an image that did
not load, a console error or an uncaught exception, a request that left this machine, a local
link that leads nowhere. The tests assert that list is empty for each page, and that it is not
for a page broken on purpose.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

from benchmarks.browser import CHROMIUM, INSTALL, launch

__all__ = ["CHROMIUM", "INSTALL", "launch", "problems", "served", "visible_step"]
LOCAL = ("file", "about", "data", "blob")

def problems(page, url: str) -> list[str]:
    """Open `url` in `page` and list what is broken on it (empty: nothing)."""
    found: list[str] = []
    page.on("console", lambda m: found.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(f"uncaught exception: {e}"))
    host = urlparse(url).netloc

    def watch(request) -> None:
        parsed = urlparse(request.url)
        if parsed.scheme not in LOCAL and parsed.netloc != host:
            found.append(f"request off this machine: {request.url}")

    page.on("request", watch)
    page.on("response", lambda r: found.append(f"{r.status} for {r.url}")
            if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    page.wait_for_timeout(200)  # scripts that run after load
    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0))"
               ".map(i => i.getAttribute('src').slice(0, 80))")
    found += [f"image did not load: {src}" for src in broken]
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    ids = set(page.eval_on_selector_all("[id]", "es => es.map(e => e.id)"))
    found += [f"link leads nowhere: {href}" for href in sorted(set(hrefs))
              if not _resolves(href, url, ids)]
    return found


def _resolves(href: str, page_url: str, ids: set[str]) -> bool:
    """A local link resolves: a file that exists, a page the server serves, an anchor on the
    same page that exists. Links off this machine are not followed (there is no network)."""
    target, fragment = urldefrag(href)
    parsed = urlparse(target)
    if parsed.scheme in ("http", "https") and parsed.netloc != urlparse(page_url).netloc:
        return True
    if target == urldefrag(page_url)[0] and fragment:
        return unquote(fragment) in ids
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).exists()
    try:
        with urllib.request.urlopen(target, timeout=10) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """Serve `folder` on the loopback interface, for as long as the block runs; its URL."""
    handler = partial(_Quiet, directory=str(folder))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the browser closing a connection early is not the page's fault


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def visible_step(page) -> tuple[int, str]:
    """On a backward-steps page: the index of the step shown, and the id of the node outlined in
    red in it (the op whose rule that step applies)."""
    return page.evaluate("""() => {
        const steps = [...document.querySelectorAll('.step')];
        const k = steps.findIndex(s => !s.hidden);
        const red = steps[k].querySelector('g.node [stroke="#d62728"]');  // viz's outline
        return [k, red ? red.closest('g.node').querySelector('title').textContent : ''];
    }""")
