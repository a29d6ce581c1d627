"""Text datasets: Keras's imdb and reuters (.npz + word index) and the user's text folders, built here
in their official formats, served from a local mirror, downloaded and read through the registry."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tests.data.formats import data_config, md5, npz_bytes, ragged, sha256, use_fixture_checksums

from reprovision.data import documents, keras
from reprovision.data.raw import PAD, RESERVED_WORDS, START
from reprovision.data.sources import download, read
from reprovision.errors import DataError

# Ranks as Keras's word index has them (1: the most frequent); rank 7 has no word in the index.
INDEX = {f"w{r}": r for r in range(1, 30) if r != 7}


def imdb_docs(n: int, first: int) -> list[list[int]]:
    """Document i holds ranks that name it: [first + i, i % 5 + 1, 7]; 7 has no word."""
    return [[first + i, i % 5 + 1, 7][: 1 + i % 3] for i in range(n)]


def serve(mirror: Path, files: dict[str, bytes]) -> None:
    mirror.mkdir(exist_ok=True)
    for name, data in files.items():
        (mirror / name).write_bytes(data)


def keras_fixture(monkeypatch, tmp_path: Path, name: str, files: dict[str, bytes], *overrides: str):
    """Serve `files` from a mirror directory with the registry's checksums pointed at them."""
    serve(tmp_path / "mirror", files)
    checks = {
        n: {"file_sha256": sha256(d)} if n.endswith(".npz") else {"content_md5": md5(d)} for n, d in files.items()
    }
    use_fixture_checksums(monkeypatch, name, **checks)
    model = "model=mlp" if name == "boston_housing" else "model=text_cnn"
    return data_config(f"data={name}", model, f"data.mirror={tmp_path / 'mirror'}", *overrides)


def words_of(row: np.ndarray, words: list[str]) -> list[str]:
    return [words[i] for i in row if i != PAD]


@pytest.fixture
def imdb(monkeypatch, tmp_path):
    """imdb.npz with 7 training and 5 test documents, labels i % 2 and (i + 1) % 2."""
    npz = npz_bytes(
        x_train=ragged(imdb_docs(7, 10)),
        y_train=np.arange(7) % 2,
        x_test=ragged(imdb_docs(5, 20)),
        y_test=(np.arange(5) + 1) % 2,
    )
    files = {"imdb.npz": npz, "imdb_word_index.json": json.dumps(INDEX).encode()}
    return keras_fixture(monkeypatch, tmp_path, "imdb", files)


def test_imdb_reads_keras_order_ids_and_words(imdb, tmp_path):
    download(imdb, tmp_path / "raw")
    raw = read("imdb", tmp_path / "raw", imdb)
    # Keras: one RandomState(113); a permutation of the training rows, then of the test rows.
    rng = np.random.RandomState(113)
    train, test = rng.permutation(7), rng.permutation(5)
    assert raw.y_train.tolist() == (train % 2).tolist() and raw.y_test.tolist() == ((test + 1) % 2).tolist()
    assert raw.kind == "text" and raw.task == "classification" and raw.classes == ["negative", "positive"]
    assert raw.x_train.dtype == np.int32 and raw.x_train.shape == (7, 4)
    assert raw.x_test.shape == (5, 4)  # START + the longest document (3 ids), both splits alike
    assert raw.words[:4] == list(RESERVED_WORDS) and raw.words[13] == "w10"  # rank r is id r + 3
    # Training document 5 (ranks 15, 1, 7): START, then its words; rank 7 has no word.
    row = raw.x_train[list(train).index(5)]
    assert row.tolist() == [START, 18, 4, 10] and words_of(row, raw.words) == ["<start>", "w15", "w1", "<unused>"]
    # Test document 0 (rank 20): one word, then padding.
    assert raw.x_test[list(test).index(0)].tolist() == [START, 23, PAD, PAD]
    assert len(raw.words) == 3 + 29 + 1  # every id that occurs, and every rank in the index, has a word


@pytest.fixture
def reuters(monkeypatch, tmp_path):
    """reuters.npz with 20 newswires (x, y) and topics i % 46."""
    docs = [[i + 1, 30] for i in range(20)]
    files = {
        "reuters.npz": npz_bytes(x=ragged(docs), y=np.arange(20) * 7 % 46),
        "reuters_word_index.json": json.dumps({**INDEX, "tonnes": 30}).encode(),
    }
    return keras_fixture(monkeypatch, tmp_path, "reuters", files)


def test_reuters_is_shuffled_then_split_as_keras_does(reuters, tmp_path):
    download(reuters, tmp_path / "raw")
    raw = read("reuters", tmp_path / "raw", reuters)
    order = np.random.RandomState(113).permutation(20)
    cut = int(20 * (1 - 0.2))  # 16 of 20 train, as Keras's test_split=0.2 gives
    assert raw.x_train[:, 1].tolist() == (order[:cut] + 1 + 3).tolist()
    assert raw.x_test[:, 1].tolist() == (order[cut:] + 1 + 3).tolist()
    assert raw.y_train.tolist() == (order[:cut] * 7 % 46).tolist() and raw.y_test.dtype == np.int64
    assert len(raw.classes) == 46 and raw.classes[:3] == ["cocoa", "grain", "veg-oil"] and raw.classes[-1] == "lead"
    assert words_of(raw.x_test[0], raw.words)[-1] == "tonnes"


def test_keras_split_sizes_are_keras_own():
    assert (keras._cut(11228), 11228 - keras._cut(11228)) == (8982, 2246)
    assert (keras._cut(506), 506 - keras._cut(506)) == (404, 102)


def test_reuters_topic_names_are_keras_label_names():
    assert len(set(keras.REUTERS_TOPICS)) == 46 and keras.REUTERS_TOPICS[3:5] == ["earn", "acq"]


# --- checksums before parsing, and the pickle inside ------------------------------------------------


def never_parsed(monkeypatch) -> None:
    """Any attempt to parse an .npz fails the test: the zip, the .npy header, np.load."""

    def parsed(*args, **kwargs):
        raise AssertionError("an unverified file was parsed")

    monkeypatch.setattr(keras, "iter_members", parsed)
    monkeypatch.setattr(np.lib.format, "read_magic", parsed)
    monkeypatch.setattr(np.lib.format, "read_array", parsed)
    monkeypatch.setattr(np, "load", parsed)


def test_a_file_failing_its_sha256_is_refused_at_download(tmp_path, monkeypatch):
    serve(tmp_path / "mirror", {"boston_housing.npz": npz_bytes(x=np.zeros((5, 13)), y=np.zeros(5))})
    cfg = data_config("data=boston_housing", "model=mlp", f"data.mirror={tmp_path / 'mirror'}")
    never_parsed(monkeypatch)
    with pytest.raises(DataError) as err:
        download(cfg, tmp_path / "raw")
    message = str(err.value)
    assert "is not the published f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5" in message
    assert "serve the original boston_housing.npz" in message and "None" not in message and "\n" not in message
    assert not (tmp_path / "raw").exists()


def test_a_raw_file_changed_after_download_is_refused_before_parsing(imdb, tmp_path, monkeypatch):
    download(imdb, tmp_path / "raw")
    (tmp_path / "raw" / "imdb.npz").write_bytes(npz_bytes(x_train=ragged([[1]]), y_train=np.zeros(1)))
    never_parsed(monkeypatch)
    with pytest.raises(DataError, match=r"imdb\.npz: checksum mismatch: sha256 \w+ is not the published"):
        read("imdb", tmp_path / "raw", imdb)


class _Gadget:
    """What a crafted pickle does: call a global of its choosing when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted_npz(marker: Path) -> bytes:
    """A reuters.npz whose x.npy declares an object array and holds a pickle naming os.system."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    npy.write(pickle.dumps(_Gadget(marker), protocol=2))
    y = io.BytesIO()
    np.save(y, np.zeros(1, dtype=np.int64))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", npy.getvalue())
        zf.writestr("y.npy", y.getvalue())
    return buf.getvalue()


def test_a_pickle_naming_any_other_global_is_refused(monkeypatch, tmp_path):
    """Even with a matching checksum (here pointed at the crafted file) only numpy's array globals load."""
    marker = tmp_path / "pwned"
    files = {"reuters.npz": crafted_npz(marker), "reuters_word_index.json": json.dumps(INDEX).encode()}
    cfg = keras_fixture(monkeypatch, tmp_path, "reuters", files)
    download(cfg, tmp_path / "raw")  # the checksum matches: only reading can refuse it
    with pytest.raises(DataError) as err:
        read("reuters", tmp_path / "raw", cfg)
    assert str(err.value) == (
        "reuters.npz: x.npy: refusing to unpickle posix.system: not part of the Keras .npz format"
    )
    assert not marker.exists()


def test_text_data_refuses_a_regression_task(imdb, tmp_path):
    download(imdb, tmp_path / "raw")
    imdb.task = "regression"  # past config's own check, as a caller building a config by hand could
    with pytest.raises(DataError, match=r"^data=imdb is a classification dataset: data\.task=regression"):
        read("imdb", tmp_path / "raw", imdb)


# --- textfolder ---------------------------------------------------------------------------------------


def write_texts(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


TEXTS = {
    "train/pos/a.txt": b"Great film, GREAT cast. Don't miss it!",
    "train/pos/b.txt": b"great_fun 2024",
    "train/neg/c.txt": "Dull. Caf\u00e9 scenes only.".encode(),
    "train/neg/notes.md": b"ignored: not a .txt file",
    "test/neg/d.txt": b"dull dull",
    "test/pos/e.txt": b"",
}


def test_textfolder_tokens_words_and_classes(tmp_path):
    cfg = data_config("data=textfolder", f"data.path={write_texts(tmp_path / 'texts', TEXTS)}", "model=text_cnn")
    download(cfg, tmp_path / "raw")
    raw = read("textfolder", tmp_path / "raw", cfg)
    assert raw.classes == ["neg", "pos"] and raw.kind == "text" and raw.task == "classification"
    vocabulary = ["2024", "caf\u00e9", "cast", "don't", "dull", "film", "fun", "great", "it", "miss", "only", "scenes"]
    assert raw.words == [*RESERVED_WORDS, *vocabulary]
    docs = [words_of(row, raw.words)[1:] for row in raw.x_train]  # train: neg/c, then pos/a, pos/b
    assert docs == [
        ["dull", "caf\u00e9", "scenes", "only"],
        ["great", "film", "great", "cast", "don't", "miss", "it"],
        ["great", "fun", "2024"],
    ]
    assert raw.y_train.tolist() == [0, 1, 1] and raw.y_test.tolist() == [0, 1]
    assert raw.x_train.shape == (3, 8) and raw.x_test.shape == (2, 8)
    assert raw.x_test[1].tolist() == [START] + [PAD] * 7  # an empty file: START alone


def test_textfolder_from_a_tar_gz_with_an_enclosing_folder(tmp_path):
    archive = tmp_path / "texts.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for rel, data in {"corpus/train/a/1.txt": b"one two", "corpus/train/b/2.txt": b"three"}.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cfg = data_config("data=textfolder", f"data.path={archive}", "model=text_cnn")
    download(cfg, tmp_path / "raw")
    raw = read("textfolder", tmp_path / "raw", cfg)
    assert raw.x_test is None and raw.words[4:] == ["one", "three", "two"]
    assert raw.x_train.tolist() == [[START, 4, 6], [START, 5, PAD]]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train/a/1.txt": b"ok", "train/b/2.txt": b"caf\xe9"}, "textfolder: train/b/2.txt is not UTF-8 text"),
        ({"train/a/1.txt": b"ok", "train/b/notes.md": b"x"}, "class 'b' in train/ has no .txt files"),
        ({"train/a/1.txt": b"ok", "test/b/2.txt": b"x"}, "class 'a' is missing from test/"),
    ],
)
def test_textfolder_refuses_bad_folders_at_download(tmp_path, files, message):
    cfg = data_config("data=textfolder", f"data.path={write_texts(tmp_path / 'texts', files)}", "model=text_cnn")
    with pytest.raises(DataError) as err:
        download(cfg, tmp_path / "raw")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "raw").exists()


def test_textfolder_keeps_the_archive_limits(tmp_path):
    cfg = data_config(
        "data=textfolder", f"data.path={write_texts(tmp_path / 'texts', TEXTS)}", "model=text_cnn",
        "data.archive.max_members=3",
    )  # fmt: skip
    with pytest.raises(DataError, match=r"over data\.archive\.max_members=3"):
        download(cfg, tmp_path / "raw")


def test_textfolder_refuses_one_huge_document_before_padding_every_other_to_it(tmp_path, monkeypatch):
    # 5 documents, the longest 7 words: 5 x 8 cells padded. A limit of 39 cells refuses them at
    # download, naming the length and the fix, and keeps nothing; 40 is enough.
    texts = write_texts(tmp_path / "texts", TEXTS)
    cfg = data_config("data=textfolder", f"data.path={texts}", "model=text_cnn")
    monkeypatch.setattr(documents, "MAX_PADDED_CELLS", 39)
    with pytest.raises(DataError) as err:
        download(cfg, tmp_path / "raw")
    message = str(err.value)
    assert message.startswith("textfolder: the longest document has 7 words; padding all 5 documents to it")
    assert message.endswith("shorten that document or cut it into several") and "\n" not in message
    assert not (tmp_path / "raw").exists()
    monkeypatch.setattr(documents, "MAX_PADDED_CELLS", 40)
    download(cfg, tmp_path / "raw")
    assert read("textfolder", tmp_path / "raw", cfg).x_train.shape == (3, 8)


def test_a_document_past_the_word_limit_is_refused_while_it_is_tokenized(tmp_path):
    """One 50 MB line of 10 million words: refused at the limit, without a list of every word."""
    import tracemalloc

    from reprovision.data.documents import MAX_DOCUMENT_WORDS

    files = {"train/a/1.txt": b"ok fine", "train/b/2.txt": b"good", "train/b/huge.txt": b"word " * 10_000_000}
    cfg = data_config("data=textfolder", f"data.path={write_texts(tmp_path / 'texts', files)}", "model=text_cnn")
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            download(cfg, tmp_path / "raw")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == (
        f"textfolder: train/b/huge.txt has over {MAX_DOCUMENT_WORDS:,} words, more than one document may; "
        "cut it into several"
    )
    assert peak < 400 * 2**20  # the file's bytes and text, and a million words; all ten million: over 600 MB
    assert not (tmp_path / "raw").exists()
