"""plots-page: the template DVC fills must carry Vega itself and never DVC's CDN placeholder."""

from __future__ import annotations

import io
import tarfile

import pytest

from reprovision.commands.plots_page import integrity, page, read_release
from reprovision.errors import StageFailed


def test_template_inlines_builds_and_licences_and_leaves_out_the_cdn_placeholder():
    template = page([("vega", "5.33.0", "window.vega = {};", "BSD <licence> text")])
    assert "{plot_divs}" in template and "{refresh_tag}" in template
    assert "{scripts}" not in template  # DVC would put its CDN <script> tags there
    assert "<script>/* vega 5.33.0 */\nwindow.vega = {};</script>" in template
    assert "BSD &lt;licence&gt; text" in template
    assert "https:" not in template


@pytest.mark.parametrize("js", ["s = '</SCRIPT>';", "s = '{plot_divs}';"])
def test_a_build_that_cannot_be_inlined_is_refused(js):
    with pytest.raises(StageFailed, match="cannot be inlined"):
        page([("vega", "5.33.0", js, "licence")])


def test_release_is_read_from_the_tarball_without_its_source_map_line(tmp_path):
    tarball = tmp_path / "vega-embed.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, text in {
            "package/build/vega-embed.min.js": "embed();\n//# sourceMappingURL=vega-embed.min.js.map\n",
            "package/LICENSE": "BSD-3-Clause",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    assert read_release(tarball, "vega-embed") == ("embed();\n", "BSD-3-Clause")
    # npm's integrity format: sha512 in base64 (`npm view vega dist.integrity`).
    assert integrity(b"") == (
        "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
    )
