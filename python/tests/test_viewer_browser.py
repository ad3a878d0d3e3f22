"""End to end in a real browser: `trajstore serve` on a synth store, driven by headless
Chromium (Debian's /usr/bin/chromium through the `playwright` package). Filters the table by
user, opens an episode, steps the scrubber with the keyboard, and checks the page's text and
the frame's pixels in a screenshot against the store.

Skipped, with the reason printed, when the browser, playwright or the `trajstore` binary is
missing. Set TRAJSTORE_SCREENSHOTS=DIR to keep the screenshots (docs/ is made this way).
"""

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

import trajstore

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("TRAJSTORE_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def trajstore_bin():
    if os.environ.get("TRAJSTORE_BIN"):
        return os.environ["TRAJSTORE_BIN"]
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "trajstore"
        if p.exists():
            return str(p)
    return shutil.which("trajstore")


def skip(reason):
    print(f"\nSKIPPED browser test: {reason}")
    pytest.skip(reason)


def decode_png(data):
    """RGB(A) 8-bit PNG (what Chromium's screenshots are) to an HxWxC array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), header
    c = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * c
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - c] if x >= c else 0
            b = prev[x]
            d = prev[x - c] if x >= c else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - d), abs(a - d), abs(a + b - 2 * d)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else d)
            cur[x] = (line[x] + p) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(height, width, c)


@pytest.fixture
def viewer(tmp_path):
    if not Path(CHROMIUM).exists():
        skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip("the playwright package is not installed (pip install playwright)")
    exe = trajstore_bin()
    if not exe:
        skip("no trajstore binary (cargo build, or set TRAJSTORE_BIN)")
    store = tmp_path / "store"
    for user, n in (("alice", 3), ("bob", 2)):
        subprocess.run([exe, "synth", str(store), "--user", user, "--episodes", str(n), "--frame", "32x32x3", "--min-steps", "8", "--max-steps", "14", "--seed", str(len(user))], check=True, capture_output=True)
    server = subprocess.Popen([exe, "serve", str(store), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = line.split("http://", 1)[1].strip()
        yield store, "http://" + url
    finally:
        server.kill()
        server.wait()


def test_table_filter_episode_scrubber_and_frame_pixels(viewer):
    from playwright.sync_api import expect, sync_playwright

    store_dir, url = viewer
    shots = os.environ.get("TRAJSTORE_SCREENSHOTS")
    store = trajstore.Store.open(store_dir, read_only=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760}, device_scale_factor=1)
            page.goto(url)
            rows = page.locator("#episodes tbody tr")
            expect(rows).to_have_count(5)
            page.select_option("select[name=user]", "bob")
            expect(rows).to_have_count(2)
            for i in range(2):
                expect(rows.nth(i).locator("td").nth(1)).to_have_text("bob")
            assert "user=bob" in page.url
            if shots:
                page.screenshot(path=os.path.join(shots, "viewer-table.png"), clip={"x": 0, "y": 0, "width": 800, "height": 200})

            eid = int(rows.first.locator("td").first.inner_text())
            rows.first.locator("a").click()
            page.wait_for_url(f"**/episode/{eid}")
            episode = store.episode(eid)
            expect(page.locator("#step")).to_have_text("0")
            expect(page.locator("#info")).to_contain_text('"stage": 1')
            expect(page.locator("#last-step")).to_have_text(str(episode.info.steps))

            steps = 3
            for _ in range(steps):
                page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("ArrowRight")
            expect(page.locator("#step")).to_have_text(str(steps))
            expect(page.locator("#scrubber")).to_have_value(str(steps))
            reward = float(episode["reward"][steps])
            expect(page.locator("#reward")).to_have_text(f"{reward:.0f}" if reward.is_integer() else f"{reward:.3f}")
            expect(page.locator("#action")).to_have_text(str(int(episode["action"][steps])))
            expect(page.locator("#info")).to_have_text("(none)")

            frame = page.locator("#frame")
            expect(frame).to_have_attribute("src", f"/api/episode/{eid}/frame/{steps}.png?field=obs%2Fframe")
            page.wait_for_function("() => { const i = document.getElementById('frame'); return i.complete && i.naturalWidth === 32; }")
            shot = decode_png(frame.screenshot())
            scale = 12  # 384 px for 32 px frames, pixelated
            assert shot.shape[:2] == (32 * scale, 32 * scale), shot.shape
            stored = episode["obs/frame"][steps]
            seen = shot[scale // 2 :: scale, scale // 2 :: scale, :3].astype(int)
            diff = np.abs(seen - stored.astype(int))
            assert diff.max() <= 2, f"screenshot differs from the stored frame by up to {diff.max()}"
            other = episode["obs/frame"][0].astype(int)
            assert np.abs(seen - other).max() > 2 or np.array_equal(stored, episode["obs/frame"][0])

            # The last step carries the winner info; the plots are drawn.
            for _ in range(episode.info.steps - steps + 2):
                page.keyboard.press("ArrowRight")
            expect(page.locator("#step")).to_have_text(str(episode.info.steps))
            expect(page.locator("#info")).to_contain_text("winner")
            expect(page.locator(".plot[data-field=reward] polyline")).to_have_count(1)
            expect(page.locator(".plot[data-field='obs/ram/health'] polyline")).to_have_count(2)
            if shots:
                page.keyboard.press("Home")
                for _ in range(steps):
                    page.keyboard.press("ArrowRight")
                page.wait_for_function("() => { const i = document.getElementById('frame'); return i.complete && i.naturalWidth === 32; }")
                page.screenshot(path=os.path.join(shots, "viewer-episode.png"))
            # Play advances the scrubber.
            page.keyboard.press("ArrowLeft")
            page.click("#play")
            expect(page.locator("#step")).not_to_have_text(str(episode.info.steps - 1), timeout=5000)
        finally:
            browser.close()
