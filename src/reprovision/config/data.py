"""The data section's schema: which datasets exist, what kind of rows and which task each has,
and the settings that read, check and batch them."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from reprovision.config.rules import NETRC, no_password, require
from reprovision.errors import ConfigError
from reprovision.tasks import TASKS, Task

# The names users may type as data.name: data.sources' registry plus the image-folder reader.
# Spelled out here so that config does not import the dataset readers; tests/test_config.py
# keeps the two equal.
IMAGEFOLDER, TABLE, TEXTFOLDER = "imagefolder", "table", "textfolder"
DATASETS = (
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    IMAGEFOLDER,
    "imdb",
    "reuters",
    "boston_housing",
    "diabetes",
    TABLE,
    TEXTFOLDER,
)
USER_DATA = (IMAGEFOLDER, TABLE, TEXTFOLDER)  # read from data.path
# What a row of each dataset is, and which datasets predict a number unless data.task says otherwise.
TEXT_DATA = ("imdb", "reuters", TEXTFOLDER)
TABLE_DATA = ("boston_housing", "diabetes", TABLE)
REGRESSION_DATA = ("boston_housing", "diabetes", TABLE)

# The sizes the built-in datasets fix before any file is read, so a net can be sized at the config
# check: an image's (C, H, W), a table's feature columns, the classes (tests/test_config.py reads
# them back from the datasets' files).
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
TABLE_COLUMNS = {"boston_housing": 13, "diabetes": 10}
CLASS_COUNTS = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "imdb": 2, "reuters": 46}
# Distinct words a built-in corpus's training split has at the least (IMDB's 88,584 in all, Reuters'
# 30,979): its vocabulary is data.num_words of them, up to these.
TEXT_WORDS = {"imdb": 40_000, "reuters": 10_000}

LOADERS = ("auto", "device", "dataloader")


@dataclass
class ArchiveConfig:
    """What one archive may hold (CIFAR's, an image folder's): past any limit it is refused,
    naming the member, before the member is read."""

    max_members: int = MISSING
    max_member_mib: int = MISSING  # the largest member, as declared and as read
    max_total_mib: int = MISSING  # all members together
    max_ratio: float = MISSING  # inflated bytes per byte of the archive file (counted past the first 8 MiB)
    max_image_mpixels: float = MISSING  # one image's pixels, from its header, before it is decoded
    max_total_mpixels: float = MISSING  # every image's together: how much decoding a dataset may ask for

    def __post_init__(self) -> None:
        for key in ("max_members", "max_member_mib", "max_total_mib"):
            require(getattr(self, key) >= 1, f"data.archive.{key}", getattr(self, key), "an integer >= 1")
        require(self.max_ratio >= 1, "data.archive.max_ratio", self.max_ratio, "a number >= 1")
        for key in ("max_image_mpixels", "max_total_mpixels"):
            require(getattr(self, key) > 0, f"data.archive.{key}", getattr(self, key), "megapixels > 0")


@dataclass
class DownloadConfig:
    """When a source is given up and the next one tried."""

    timeout_s: float = MISSING  # a source silent this long, or slower than min_kib_per_s over this long
    min_kib_per_s: float = MISSING
    max_mib: int = MISSING  # the largest file accepted from any source

    def __post_init__(self) -> None:
        require(self.timeout_s > 0, "data.download.timeout_s", self.timeout_s, "seconds > 0")
        require(self.min_kib_per_s >= 0, "data.download.min_kib_per_s", self.min_kib_per_s, "a number >= 0")
        require(self.max_mib >= 1, "data.download.max_mib", self.max_mib, "an integer >= 1")


@dataclass
class DataConfig:
    name: str = MISSING  # one of DATASETS
    mirror: str | None = MISSING  # http(s) base URL or local directory, tried before the official URLs
    classes: list[str] | None = MISSING  # a subset of the dataset's classes (relabelled 0..k-1)
    path: str | None = MISSING  # imagefolder/textfolder: a directory or archive of train/<class>/*; table: a CSV
    task: str = MISSING  # classification | regression: the dataset's own (a table may be either)
    target: str | None = MISSING  # table: the column to predict
    num_words: int = MISSING  # text: the vocabulary, the most frequent words of the training split
    max_length: int | None = MISSING  # text: words kept per document (the first); None: all
    channels: int | None = MISSING  # imagefolder: 1 (greyscale) or 3 (RGB)
    image_size: int | None = MISSING  # imagefolder: resize every image to this square size
    val_fraction: float = MISSING
    test_fraction: float = MISSING  # used only by datasets without a test split of their own
    batch_size: int = MISSING
    eval_batch_size: int = MISSING  # validation and test batches (per process): larger is faster
    loader: str = MISSING  # auto | device (splits on the training device) | dataloader (shards read per batch)
    device_max_mb: int = MISSING  # loader=auto: device while the train and val splits hold at most this
    num_workers: int = MISSING  # loader=dataloader only
    crop_padding: int = MISSING  # training augmentation: random crop after padding by this many pixels
    flip: bool = MISSING  # training augmentation: random horizontal flip
    crop_scale: list[float] | None = MISSING  # training augmentation: random resized crops of this share of the area
    archive: ArchiveConfig = MISSING
    download: DownloadConfig = MISSING

    @property
    def kind(self) -> str:
        """What a row is: image, table or text."""
        return "text" if self.name in TEXT_DATA else "table" if self.name in TABLE_DATA else "image"

    @property
    def task_spec(self) -> Task:
        return TASKS[self.task]

    def __post_init__(self) -> None:
        require(self.name in DATASETS, "data.name", self.name, "one of " + ", ".join(DATASETS))
        no_password("data.mirror", self.mirror, NETRC)
        require(0 < self.val_fraction < 1, "data.val_fraction", self.val_fraction, "0 < x < 1")
        require(0 < self.test_fraction < 1, "data.test_fraction", self.test_fraction, "0 < x < 1")
        require(self.batch_size >= 1, "data.batch_size", self.batch_size, "an integer >= 1")
        require(self.eval_batch_size >= 1, "data.eval_batch_size", self.eval_batch_size, "an integer >= 1")
        require(self.loader in LOADERS, "data.loader", self.loader, "one of " + ", ".join(LOADERS))
        require(self.num_workers >= 0, "data.num_workers", self.num_workers, "an integer >= 0")
        require(self.device_max_mb >= 0, "data.device_max_mb", self.device_max_mb, "an integer >= 0")
        require(self.crop_padding >= 0, "data.crop_padding", self.crop_padding, "an integer >= 0")
        require(self.channels in (None, 1, 3), "data.channels", self.channels, "1, 3 or null")
        scale = self.crop_scale
        require(
            scale is None or (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1),
            "data.crop_scale",
            self.crop_scale,
            "null or [smallest, largest] share of the image's area, 0 < smallest <= largest <= 1",
        )
        if self.crop_scale is not None and self.crop_padding:
            raise ConfigError(
                f"data.crop_scale={self.crop_scale} and data.crop_padding={self.crop_padding} both crop; "
                "keep one (crop_padding=0 for resized crops)"
            )
        require(
            self.image_size is None or self.image_size >= 1,
            "data.image_size",
            self.image_size,
            "an integer >= 1 or null",
        )
        require(
            self.classes is None or len(set(self.classes)) == len(self.classes) >= 2,
            "data.classes",
            self.classes,
            "null or at least two distinct class names",
        )
        require(self.task in TASKS, "data.task", self.task, "classification or regression")
        own = "regression" if self.name in REGRESSION_DATA else "classification"
        if self.task != own and self.name != TABLE:
            raise ConfigError(f"data.task={self.task}: {self.name} is a {own} dataset; set data.task={own}")
        if self.task == "regression" and self.classes is not None:
            raise ConfigError("data.classes picks classes: a regression dataset has none; set data.classes=null")
        require(self.num_words >= 8, "data.num_words", self.num_words, "an integer >= 8")
        require(
            self.max_length is None or self.max_length >= 1,
            "data.max_length",
            self.max_length,
            "an integer >= 1 or null",
        )
        if self.name in USER_DATA and not self.path:
            what = "a CSV file with a header row" if self.name == TABLE else "a directory or archive of train/<class>/"
            raise ConfigError(f"data={self.name} needs data.path: {what} (-S data.path=...)")
        if self.name == IMAGEFOLDER:
            require(self.channels is not None, "data.channels", self.channels, "1 or 3 for data=imagefolder")
        if self.name == TABLE and not self.target:
            raise ConfigError("data=table needs data.target: the CSV column to predict (-S data.target=...)")
