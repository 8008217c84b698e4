"""Dataset layouts: the real on-disk trees of CK+, Oulu-CASIA and AFEW, generic label folders and CSV manifests.

Each adapter turns a dataset root into a ``DatasetIndex``: the ordered class
names and one ``Sample`` per labelled clip (a video file or a frame folder),
with the subject where the layout names it (CK+ ``S005``, Oulu-CASIA ``P001``,
a manifest's ``subject`` column) and the official split where there is one
(AFEW ``Train``/``Val``, a manifest's ``split`` column). ``LAYOUTS`` is the
registry; ``load_index(data, dataset="auto")`` picks and runs one.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hac_runtime.errors import HacError
from hac_runtime.media import VIDEO_EXTS, image_files, natural_key

CK_CLASSES = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
CK_CODES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness", 6: "sadness", 7: "surprise"}
OULU_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
AFEW_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
# folder names of the public datasets → the class names used everywhere in this toolkit
SYNONYMS = {"angry": "anger", "disgusted": "disgust", "fearful": "fear", "happy": "happiness", "sad": "sadness",
            "surprised": "surprise", "neutral": "neutral"}
ILLUMINATIONS = ("strong", "weak", "dark")


@dataclass(frozen=True)
class Sample:
    """One labelled clip: ``source`` a video file or a frame folder; ``key`` its path relative to the dataset root."""

    source: Path
    label: str
    key: str
    subject: str | None = None
    split: str | None = None


@dataclass
class DatasetIndex:
    """What a layout adapter found: classes (ordered), samples, and the layout's name."""

    root: Path
    layout: str
    classes: list[str]
    samples: list[Sample]
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(s.label for s in self.samples)
        return {k: c.get(k, 0) for k in self.classes}


def canonical(label: str) -> str:
    low = label.strip().lower()
    return SYNONYMS.get(low, low)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _has_images(folder: Path) -> bool:
    return any(p.is_file() for p in image_files(folder))


def _is_clip(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() in VIDEO_EXTS) or (p.is_dir() and _has_images(p))


def _key(root: Path, p: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def _check_root(data) -> Path:
    root = Path(data)
    if not root.exists():
        raise HacError(f"{root}: data folder not found")
    if root.is_dir() and not any(_visible(p) for p in root.iterdir()):
        raise HacError(f"{root}: data folder is empty")
    return root


def _children(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _visible(p)), key=lambda p: natural_key(p.name))


# ---- CK+ ------------------------------------------------------------------------------------------------------------
def _find_dir(root: Path, name: str, depth: int = 2) -> Path | None:
    if root.name.lower() == name.lower():
        return root
    level = [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            for c in _children(d) if d.is_dir() else []:
                if c.is_dir():
                    if c.name.lower() == name.lower():
                        return c
                    nxt.append(c)
        level = nxt
    return None


def read_ck_label(path: Path) -> str:
    """A CK+ ``*_emotion.txt`` (one float, 1–7) → class name; anything else is a one-line error."""
    try:
        text = path.read_text(errors="strict").strip()
        code = float(text.split()[0])
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        raise HacError(f"{path}: unreadable CK+ emotion label (expected one number 1-7)") from None
    if code != int(code) or int(code) not in CK_CODES:
        raise HacError(f"{path}: CK+ emotion code {text!r} is not one of 1-7")
    return CK_CODES[int(code)]


def load_ck(root: Path, **_) -> DatasetIndex:
    """CK+: ``cohn-kanade-images/Sxxx/yyy/*.png`` and ``Emotion/Sxxx/yyy/*_emotion.txt`` (the 327 labelled sequences)."""
    images = _find_dir(root, "cohn-kanade-images")
    emotion = _find_dir(root, "Emotion")
    if images is None or emotion is None:
        raise HacError(f"{root}: not a CK+ tree (needs cohn-kanade-images/ and Emotion/)")
    samples, notes = [], []
    for subject in _children(emotion):
        if not subject.is_dir():
            continue
        for seq in _children(subject):
            labels = sorted(seq.glob("*_emotion.txt")) if seq.is_dir() else []
            if not labels:
                continue  # an unlabelled sequence (593 − 327 of them)
            if len(labels) > 1:
                raise HacError(f"{seq}: several emotion files for one sequence")
            label = read_ck_label(labels[0])
            frames = images / subject.name / seq.name
            samples.append(Sample(frames, label, _key(root, frames), subject=subject.name))
    if not samples:
        raise HacError(f"{emotion}: no *_emotion.txt label files found")
    return DatasetIndex(root, "ck+", list(CK_CLASSES), samples, notes)


# ---- Oulu-CASIA -----------------------------------------------------------------------------------------------------
def load_oulu(root: Path, subset: str | None = None, **_) -> DatasetIndex:
    """Oulu-CASIA: ``<VL|NI…>/<Strong|Weak|Dark>/Pxxx/<Expression>/*.jpeg`` sequences (6 classes).

    ``subset`` ``"VL/Strong"`` (default: visible light, normal illumination, the usual 480-sequence protocol),
    e.g. ``"NI/Dark"``, or ``"all"``.
    """
    subset = subset or "VL/Strong"
    if subset.lower() == "all":
        want_spec, want_ill = None, None
    else:
        parts = subset.split("/")
        if len(parts) != 2 or parts[1].lower() not in ILLUMINATIONS:
            raise HacError(f"bad Oulu-CASIA subset {subset!r}: use SPECTRUM/ILLUMINATION (e.g. VL/Strong) or all")
        want_spec, want_ill = parts[0].upper(), parts[1].lower()
    found: dict[Path, list[Sample]] = {}
    for expr_dir in _walk_dirs(root, 6):
        subj, ill, spec = expr_dir.parent, expr_dir.parent.parent, expr_dir.parent.parent.parent
        if not (re.fullmatch(r"P\d+", subj.name, re.I) and ill.name.lower() in ILLUMINATIONS
                and re.match(r"(VL|NI|VIS|NIR)", spec.name, re.I) and canonical(expr_dir.name) in OULU_CLASSES):
            continue
        if want_spec and not spec.name.upper().startswith(want_spec):
            continue
        if want_ill and ill.name.lower() != want_ill:
            continue
        if not _has_images(expr_dir):
            continue
        found.setdefault(spec, []).append(Sample(expr_dir, canonical(expr_dir.name), _key(root, expr_dir),
                                                 subject=subj.name.upper()))
    if not found:
        raise HacError(f"{root}: no Oulu-CASIA sequences for subset {subset} "
                       "(expects <VL|NI>/<Strong|Weak|Dark>/Pxxx/<Expression>/ image folders)")
    if want_spec and len(found) > 1:
        names = ", ".join(_key(root, p) for p in found)
        raise HacError(f"{root}: several Oulu-CASIA copies of {want_spec} ({names}); point DATA at one of them")
    samples = [s for group in found.values() for s in group]
    return DatasetIndex(root, "oulu", list(OULU_CLASSES), samples, [f"subset {subset}"])


def _walk_dirs(root: Path, depth: int):
    level = [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            for c in _children(d):
                if c.is_dir():
                    yield c
                    nxt.append(c)
        level = nxt


# ---- AFEW -----------------------------------------------------------------------------------------------------------
def _afew_splits(root: Path) -> dict[str, Path]:
    out = {}
    for c in _children(root):
        m = re.fullmatch(r"(train|val)(_afew)?", c.name, re.I)
        if c.is_dir() and m:
            out[m.group(1).lower()] = c
    return out


def load_afew(root: Path, **_) -> DatasetIndex:
    """AFEW: ``Train/<Emotion>/*.avi`` and ``Val/<Emotion>/*.avi`` (7 classes; Val is the official validation split)."""
    splits = _afew_splits(root)
    if not splits:
        raise HacError(f"{root}: not an AFEW tree (needs Train/ and/or Val/ with one folder per emotion)")
    samples = []
    for split, folder in sorted(splits.items()):
        for emo in _children(folder):
            if not emo.is_dir():
                continue
            label = canonical(emo.name)
            if label not in AFEW_CLASSES:
                raise HacError(f"{emo}: unknown AFEW emotion folder (expected one of "
                               "Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise)")
            for clip in _children(emo):
                if clip.is_file() and clip.suffix.lower() in VIDEO_EXTS:
                    samples.append(Sample(clip, label, _key(root, clip), split="train" if split == "train" else "val"))
    return DatasetIndex(root, "afew", list(AFEW_CLASSES), samples)


# ---- generic folders and CSV manifests -------------------------------------------------------------------------------
def load_folders(root: Path, **_) -> DatasetIndex:
    """``<label>/<clip>``: clip = a video file or a folder of frames. An optional ``manifest.csv`` (path, subject,
    split columns) adds subjects and splits."""
    if not root.is_dir():
        raise HacError(f"{root}: not a folder")
    classes, samples = [], []
    for label_dir in _children(root):
        if not label_dir.is_dir():
            continue
        if _has_images(label_dir):
            raise HacError(f"{label_dir}: holds images directly; expected <label>/<clip> (a video or a frame folder)")
        clips = [c for c in _children(label_dir) if _is_clip(c)]
        classes.append(label_dir.name)
        samples += [Sample(c, label_dir.name, _key(root, c)) for c in clips]
    if not classes:
        raise HacError(f"{root}: unknown layout (no CK+, Oulu-CASIA or AFEW tree, and no <label>/<clip> folders)")
    extra = root / "manifest.csv"
    notes = []
    if extra.is_file():
        meta = {row["path"]: row for row in _read_csv(extra)}
        samples = [Sample(s.source, s.label, s.key, meta.get(s.key, {}).get("subject") or None,
                          meta.get(s.key, {}).get("split") or None) for s in samples]
        notes.append(f"subjects and splits from {extra.name}")
    return DatasetIndex(root, "folders", sorted(classes, key=natural_key), samples, notes)


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise HacError(f"{path}: unreadable CSV manifest ({type(e).__name__})") from None
    if not rows:
        raise HacError(f"{path}: CSV manifest has no rows")
    cols = set(rows[0])
    if not {"path", "label"} <= cols:
        raise HacError(f"{path}: CSV manifest needs 'path' and 'label' columns (has {', '.join(sorted(cols))})")
    return rows


def load_csv(data: Path, **_) -> DatasetIndex:
    """A CSV manifest: ``path,label[,subject][,split]``, paths relative to the CSV's folder (or DATA/manifest.csv)."""
    path = data / "manifest.csv" if data.is_dir() else data
    if not path.is_file():
        raise HacError(f"{data}: no CSV manifest (give the .csv file or a folder holding manifest.csv)")
    root = path.parent
    samples = []
    for line, row in enumerate(_read_csv(path), start=2):
        label = (row.get("label") or "").strip()
        rel = (row.get("path") or "").strip()
        if not label or not rel:
            raise HacError(f"{path}:{line}: empty path or label")
        src = (root / rel) if not Path(rel).is_absolute() else Path(rel)
        split = (row.get("split") or "").strip().lower() or None
        samples.append(Sample(src, label, rel, (row.get("subject") or "").strip() or None, split))
    classes = sorted({s.label for s in samples}, key=natural_key)
    return DatasetIndex(root, "csv", classes, samples, [f"manifest {path.name}"])


def load_unlabelled(data) -> DatasetIndex:
    """Every clip under DATA at any depth, labels unknown (``hac-train --teacher`` gives them): a video file, or
    a folder holding images (one frame sequence). Hidden entries (``.hac-cache``) are not looked at."""
    root = _check_root(data)
    if not root.is_dir():
        raise HacError(f"{root}: --teacher needs a folder of clips (videos or frame folders)")
    samples = []

    def walk(folder: Path) -> None:
        for c in _children(folder):
            if c.is_file() and c.suffix.lower() in VIDEO_EXTS:
                samples.append(Sample(c, "", _key(root, c)))
            elif c.is_dir():
                if _has_images(c):
                    samples.append(Sample(c, "", _key(root, c)))
                else:
                    walk(c)

    if _has_images(root):
        samples.append(Sample(root, "", root.name))
    else:
        walk(root)
    if not samples:
        raise HacError(f"{root}: no clips found (video files or folders of frames)")
    return DatasetIndex(root, "unlabelled", [], samples, ["labels from the teacher"])


LAYOUTS = {"ck+": load_ck, "oulu": load_oulu, "afew": load_afew, "folders": load_folders, "csv": load_csv}


def detect_layout(root: Path) -> str:
    """The layout of a dataset root: csv, ck+, afew, oulu or folders."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise HacError(f"{root}: a file; DATA must be a dataset folder or a .csv manifest")
    if _find_dir(root, "cohn-kanade-images") is not None:
        return "ck+"
    if _afew_splits(root):
        return "afew"
    for d in _walk_dirs(root, 5):
        if re.fullmatch(r"P\d+", d.name, re.I) and d.parent.name.lower() in ILLUMINATIONS:
            return "oulu"
    return "folders"


def load_index(data, dataset: str = "auto", subset: str | None = None) -> DatasetIndex:
    """Find the labelled clips of a dataset root. Every problem here is a one-line ``HacError``."""
    root = _check_root(data)
    name = dataset.lower()
    if name in ("ck", "ckplus", "ck+"):
        name = "ck+"
    if name == "auto":
        name = detect_layout(root)
    if name not in LAYOUTS:
        raise HacError(f"unknown dataset layout {dataset!r}; choose auto, {', '.join(LAYOUTS)}")
    if name != "csv" and not root.is_dir():
        raise HacError(f"{root}: not a folder")
    index = LAYOUTS[name](root, subset=subset)
    if not index.samples:
        raise HacError(f"{root}: no labelled clips found ({name} layout)")
    unknown = sorted({s.label for s in index.samples} - set(index.classes))
    if unknown:
        raise HacError(f"{root}: labels {', '.join(unknown)} are not classes of the {name} layout")
    return index
