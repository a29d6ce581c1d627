"""plots-page: build the HTML template for `dvc plots show` with Vega inlined, so the page renders offline.

DVC's default page loads Vega from a CDN and stays blank on a machine with no network. `.dvc/config`
points `plots.html_template` at the template written here: the three minified Vega builds, fetched
from the npm registry by `npm pack` and checked against the sha512 pinned below, inlined in the page
with their licences. `make install` runs it (`reprovision plots-page`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from reprovision.errors import BadInput, StageFailed
from reprovision.files import atomic_dir

# In load order: vega-lite needs the global `vega`, vega-embed both; it defines `vegaEmbed`, which
# every chart div DVC writes calls. The last Vega 5 / Vega-Lite 5 / Vega-Embed 6 releases read the
# Vega-Lite v5 specs DVC 3 writes; DVC's own CDN tags name vega 5.20.2 with vega-lite 5.2.0, which
# requires vega ^5.21. (vega 5.33.1 is newer but its npm package lacks the LICENSE file.)
# Integrity: the npm registry's `dist.integrity` of each tarball (`npm view vega@5.33.0 dist.integrity`).
PACKAGES = {
    "vega": (
        "5.33.0",
        "sha512-jNAGa7TxLojOpMMMrKMXXBos4K6AaLJbCgGDOw1YEkLRjUkh12pcf65J2lMSdEHjcEK47XXjKiOUVZ8L+MniBA==",
    ),
    "vega-lite": (
        "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
    ),
    "vega-embed": (
        "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
    ),
}
# DVC fills the template by plain text replacement of these; `{scripts}` is left out on purpose:
# DVC would put its CDN <script> tags there.
PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}", "{scripts}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=".dvc/plots/offline", type=Path, help="directory for template.html and the licences"
    )


def integrity(data: bytes) -> str:
    """npm's Subresource Integrity string of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(dest: Path) -> dict[str, Path]:
    """The pinned tarballs in `dest`, each refused unless its sha512 is the pinned one."""
    npm = shutil.which("npm")
    if npm is None:
        raise BadInput(
            "npm not found: the offline plots page inlines Vega from the npm registry; "
            "install npm (Debian: apt-get install npm) and run `make install` again"
        )
    specs = [f"{name}@{version}" for name, (version, _) in PACKAGES.items()]
    # --ignore-scripts: nothing from the packages runs here; we only read files out of the tarballs.
    proc = subprocess.run(
        [npm, "pack", "--json", "--ignore-scripts", "--pack-destination", str(dest), *specs],
        cwd=dest,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise StageFailed(f"npm pack {' '.join(specs)} failed:\n{proc.stderr.strip()[-2000:]}")
    tarballs = {entry["name"]: dest / entry["filename"] for entry in json.loads(proc.stdout)}
    for name, (version, pinned) in PACKAGES.items():
        got = integrity(tarballs[name].read_bytes())
        if got != pinned:
            raise StageFailed(f"{name}@{version}: tarball sha512 {got} is not the pinned {pinned}; refusing it")
    return tarballs


def read_release(tarball: Path, name: str) -> tuple[str, str]:
    """The minified browser build and the licence text from a package tarball."""
    with tarfile.open(tarball) as tar:
        js = tar.extractfile(f"package/build/{name}.min.js").read().decode()
        licence = tar.extractfile("package/LICENSE").read().decode()
    # The source map is not shipped: without this line the browser would look for it beside the page.
    return re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js), licence


def page(releases: list[tuple[str, str, str, str]]) -> str:
    """The template: (name, version, minified js, licence) inlined, in load order."""
    for name, _, js, licence in releases:
        # `</script` would end the <script> element early; a placeholder would be filled by DVC.
        clash = [s for s in ("</script", "<!--", *PLACEHOLDERS) if s in js.lower() or s in licence]
        if clash:
            raise StageFailed(f"{name}'s build contains {clash[0]!r}: it cannot be inlined as it is")
    names = ", ".join(f"{name} {version}" for name, version, _, _ in releases)
    scripts = "\n".join(f"<script>/* {name} {version} */\n{js}</script>" for name, version, js, _ in releases)
    licences = "\n".join(
        f"<h4>{name} {version}</h4>\n<pre>{html.escape(licence)}</pre>" for name, version, _, licence in releases
    )
    # The charset matters: the builds hold non-ASCII text and a file:// page has no HTTP header to say so.
    return f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>DVC Plot</title>
<!-- {names} from the npm registry, inlined so that this page needs no network.
     Built by `reprovision plots-page` (make install); licences at the end of the page. -->
{scripts}
<style>
table {{ border-spacing: 15px; }}
</style>
</head>
<body>
{{plot_divs}}
<details>
<summary>Licences of the inlined {names}</summary>
{licences}
</details>
</body>
</html>
"""


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(args.out) as out:
        tarballs = fetch(Path(tmp))
        releases = []
        for name, (version, _) in PACKAGES.items():
            js, licence = read_release(tarballs[name], name)
            (out / f"LICENSE.{name}").write_text(licence)
            releases.append((name, version, js, licence))
        (out / "template.html").write_text(page(releases), encoding="utf-8")
    print(f"plots page: {args.out}/template.html ({', '.join(f'{n} {v}' for n, (v, _) in PACKAGES.items())})")
