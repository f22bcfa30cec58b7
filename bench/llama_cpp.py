#!/usr/bin/python3
"""llama.cpp as a prefill baseline for bench/model_prefill.py.

    bench/llama_cpp.py [--layers 1] [--tokens 512] [--threads 2] [--workdir DIR]
    bench/llama_cpp.py --build        (compiles the prefill driver only)

Run alone, it makes an L-layer model the way model_prefill.py does, converts
it, compares llama.cpp's logits with model_prefill.py's PyTorch model on a
64-token prefix, and times one T-token prefill.

What it measures: `llama-prefill` (the C++ program in PREFILL_CPP below,
linked against libllama) loads an f32 GGUF, makes a context with
n_ctx = n_batch = n_ubatch = T, one sequence, K/V cache in f32, and decodes
the T tokens as ONE batch with logits requested at every position (logits
for all T x V). It does `warmup` passes, then times `passes` passes, clearing
the KV cache (llama_memory_clear) before each; tokens/s = T * passes / time
of the timed passes. It runs in a fresh process under `/usr/bin/time -v`,
whose "Maximum resident set size" is the peak RSS (weights are mmapped, so
they count once touched).

Attention: flash_attn=None is llama.cpp's default (auto, resolved to ON for
the CPU backend). With flash attention llama.cpp casts K and V to f16 before
ggml_flash_attn_ext (src/llama-graph.cpp, even from an f32 cache), so logits
differ from f32 PyTorch by ~1e-4 (max |diff| / max |logit|). flash_attn=False
is f32 throughout (~1e-6) but materializes the [T, T] scores of every head
(16 x T^2 x 4 bytes: 1 GiB at T = 4096). LLAMA_PREFILL_VERBOSE=1 shows
llama.cpp's log.

How it was built (everything under $MOEC_LLAMA_CPP_DIR, default /work/llama;
llama.cpp is the copy vendored in the llama-cpp-python 0.3.36 sdist, ggml
0.25.3, commit 0c1e570):

    cd /work/llama
    /usr/bin/python3 -m venv --system-site-packages venv
    venv/bin/pip download llama-cpp-python --no-binary :all: --no-deps -d .
    tar xzf llama_cpp_python-0.3.36.tar.gz
    ln -s llama_cpp_python-0.3.36/vendor/llama.cpp llama.cpp
    nice -n 19 cmake -S llama.cpp -B build -DCMAKE_BUILD_TYPE=Release \\
        -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON -DGGML_OPENMP=ON \\
        -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \\
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF
    nice -n 19 cmake --build build -j2           # build/bin/libllama.so, ...
    # converter deps; torch is Debian's 1.13 (no newer torch is reachable),
    # so numpy stays Debian's 1.24 (gguf asks for >= 2.2.6 but runs on it):
    venv/bin/pip install llama.cpp/gguf-py transformers==4.57.6 safetensors \\
        sentencepiece tokenizers
    venv/bin/pip uninstall -y numpy
    /usr/bin/python3 bench/llama_cpp.py --build  # bin/llama-prefill

An AVX2-only build (for AVX2 rows on an AVX-512 machine: GGML_NATIVE would
pick AVX-512 kernels) goes in a second directory that shares the sources
and the venv, selected with MOEC_LLAMA_CPP_DIR:

    mkdir /work/llama-avx2 && cd /work/llama-avx2
    ln -s /work/llama/llama.cpp llama.cpp; ln -s /work/llama/venv venv
    nice -n 19 cmake -S llama.cpp -B build <the options above, with
        -DGGML_NATIVE=OFF instead of ON> -DGGML_AVX=ON -DGGML_AVX2=ON \
        -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF
    nice -n 19 cmake --build build -j2
    MOEC_LLAMA_CPP_DIR=/work/llama-avx2 /usr/bin/python3 bench/llama_cpp.py --build

Conversion: convert_hf_to_gguf.py --outtype f32 on a staging directory next
to the output (config.json with "architectures": ["MixtralForCausalLM"],
model.safetensors -> the weights, and a stand-in Llama-style tokenizer: a
byte-fallback BPE tokenizer.json with no merges, <unk> <s> </s>, the 256
byte tokens and "▁tN" fillers up to the vocabulary size). The tokenizer is
never used: token ids go straight into the batch. torch 1.13 lacks the
float8 dtypes that the converter names, so they are aliased before it runs.

model_prefill.py may import: available(), convert(), run_prefill().
Standard library and NumPy only.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

DIR = os.environ.get("MOEC_LLAMA_CPP_DIR", "/work/llama")
SRC = os.path.join(DIR, "llama.cpp")
LIB = os.path.join(DIR, "build", "bin")
PREFILL = os.path.join(DIR, "bin", "llama-prefill")
VENV_PY = os.path.join(DIR, "venv", "bin", "python")

PREFILL_CPP = r"""
// llama-prefill MODEL.gguf TOKENS.i32 THREADS PASSES WARMUP FLASH_ATTN(-1|0|1) [LOGITS.f32]
// LLAMA_PREFILL_LAST_ONLY=1: logits of the last position only (llama-bench -p).
#include "llama.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static void log_warn(enum ggml_log_level level, const char * text, void *) {
    static const bool verbose = getenv("LLAMA_PREFILL_VERBOSE") != nullptr;
    if (verbose || level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc < 7) { fprintf(stderr, "usage: see bench/llama_cpp.py\n"); return 2; }
    const int threads = atoi(argv[3]), passes = atoi(argv[4]), warmup = atoi(argv[5]);
    std::vector<llama_token> tokens;
    FILE * f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    for (llama_token t; fread(&t, sizeof t, 1, f) == 1;) tokens.push_back(t);
    fclose(f);
    const int T = (int) tokens.size();

    llama_log_set(log_warn, nullptr);
    llama_backend_init();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = T;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.flash_attn_type = (llama_flash_attn_type) atoi(argv[6]);
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;

    static const bool last_only = getenv("LLAMA_PREFILL_LAST_ONLY") != nullptr;
    llama_batch batch = llama_batch_init(T, 0, 1);
    for (int i = 0; i < T; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = !last_only || i == T - 1;  // all positions, or the last
    }
    batch.n_tokens = T;

    double total = 0;
    for (int p = 0; p < warmup + passes; p++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        auto t0 = std::chrono::steady_clock::now();
        if (llama_decode(ctx, batch)) { fprintf(stderr, "llama_decode failed\n"); return 1; }
        llama_synchronize(ctx);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        printf("%s %d: %.4f s\n", p < warmup ? "warmup" : "pass", p, s);
        if (p >= warmup) total += s;
    }
    if (passes > 0) printf("%.2f tokens/s\n", (double) T * passes / total);
    if (argc > 7) {
        const int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
        FILE * out = fopen(argv[7], "wb");
        fwrite(llama_get_logits(ctx), sizeof(float), (size_t) (last_only ? 1 : T) * V, out);
        fclose(out);
    }
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
"""

# Runs convert_hf_to_gguf.py in the venv, with torch 1.13's missing dtypes aliased.
CONVERT_SHIM = r"""
import runpy, sys, torch
for name in ("float8_e4m3fn", "float8_e5m2"):
    if not hasattr(torch, name):
        setattr(torch, name, torch.uint8)  # only named in tables; weights are F32
script = sys.argv[1]
sys.path.insert(0, script.rsplit("/", 1)[0])
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def available():
    """True if the prefill driver, the converter and its venv are built."""
    return all(os.path.exists(p) for p in
               (PREFILL, VENV_PY, os.path.join(SRC, "convert_hf_to_gguf.py")))


def build():
    """Compiles PREFILL_CPP against the built libllama into DIR/bin."""
    os.makedirs(os.path.dirname(PREFILL), exist_ok=True)
    source = os.path.join(DIR, "prefill.cpp")
    with open(source, "w") as f:
        f.write(PREFILL_CPP)
    subprocess.run(["nice", "-n", "19", "g++", "-O2", "-std=c++17",
                    "-I", os.path.join(SRC, "include"),
                    "-I", os.path.join(SRC, "ggml", "include"), source,
                    "-L", LIB, "-lllama", "-Wl,-rpath," + LIB, "-o", PREFILL],
                   check=True)


def write_tokenizer(directory, vocab_size):
    """A stand-in Llama (byte-fallback BPE) tokenizer the converter accepts."""
    special = ["<unk>", "<s>", "</s>"]
    names = special + ["<0x%02X>" % b for b in range(256)]
    names += ["\u2581t%d" % i for i in range(len(names), vocab_size)]
    tokenizer = {
        "version": "1.0",
        "added_tokens": [{"id": i, "content": t, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True} for i, t in enumerate(special)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None, "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(names)}, "merges": []},
    }
    with open(os.path.join(directory, "tokenizer.json"), "w") as f:
        json.dump(tokenizer, f)
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast",
                   "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "add_bos_token": False, "add_eos_token": False}, f)


def convert(model_dir, out_path, weights=None):
    """config.json + weights (model.safetensors, or `weights`) -> f32 GGUF."""
    weights = os.path.abspath(weights or os.path.join(model_dir, "model.safetensors"))
    stage = out_path + ".hf"
    os.makedirs(stage, exist_ok=True)
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("moec", None)
    cfg["architectures"] = ["MixtralForCausalLM"]
    with open(os.path.join(stage, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    link = os.path.join(stage, "model.safetensors")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(weights, link)
    write_tokenizer(stage, cfg["vocab_size"])
    p = subprocess.run(["nice", "-n", "19", VENV_PY, "-c", CONVERT_SHIM,
                        os.path.join(SRC, "convert_hf_to_gguf.py"), stage,
                        "--outtype", "f32", "--outfile", out_path],
                       capture_output=True, text=True)
    if p.returncode:
        sys.exit("convert_hf_to_gguf.py failed:\n" + p.stdout + p.stderr[-4000:])
    return out_path


def run_prefill(gguf_path, tokens, threads=2, passes=3, warmup=1, logits=False,
                flash_attn=None, last_only=False):
    """Times a prefill of `tokens` in a fresh process.

    Returns dict(tokens_per_s, peak_rss_mb, pass_s=[...], logits=[T, V] f32 of
    the last pass if logits=True). flash_attn: None (llama.cpp's auto),
    True or False. last_only: logits of the last position only, as
    llama-bench -p computes them.
    """
    tokens = np.asarray(tokens, dtype=np.int32).ravel()
    fa = {None: -1, False: 0, True: 1}[flash_attn]
    with tempfile.TemporaryDirectory(prefix="llama-prefill-") as tmp:
        tok_path, out_path = os.path.join(tmp, "tokens.i32"), os.path.join(tmp, "logits.f32")
        tokens.tofile(tok_path)
        cmd = ["/usr/bin/time", "-v", PREFILL, gguf_path, tok_path, str(threads),
               str(passes), str(warmup), str(fa)] + ([out_path] if logits else [])
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        if last_only:
            env["LLAMA_PREFILL_LAST_ONLY"] = "1"
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode:
            sys.exit("llama-prefill failed:\n" + p.stdout + p.stderr)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        tps = re.search(r"([\d.]+) tokens/s", p.stdout)
        out = dict(tokens_per_s=float(tps.group(1)) if tps else float("nan"),
                   peak_rss_mb=int(rss.group(1)) / 1024 if rss else float("nan"),
                   pass_s=[float(s) for s in re.findall(r"pass \d+: ([\d.]+) s", p.stdout)])
        if logits:
            out["logits"] = np.fromfile(out_path, dtype=np.float32).reshape(
                1 if last_only else tokens.size, -1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="store_true", help="compile llama-prefill only")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    if args.build:
        return build()
    if not available():
        sys.exit("llama.cpp is not built under %s (see this file's docstring)" % DIR)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import model_prefill as mp

    fa = {"auto": None, "on": True, "off": False}[args.flash_attn]
    work = args.workdir or tempfile.mkdtemp(prefix="llama-cpp-check-")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(mp.config(args.layers, "full"), f, indent=1)
    weights = os.path.join(work, "w.safetensors")
    subprocess.run([sys.executable, os.path.join(mp.ROOT, "examples/make_weights.py"),
                    os.path.join(work, "config.json"), weights, "--seed", "1"],
                   check=True, stdout=subprocess.DEVNULL)
    gguf = convert(work, os.path.join(work, "model-f32.gguf"), weights)
    tokens = np.random.default_rng(args.tokens).integers(0, 32000, args.tokens).astype(np.int32)

    check = min(64, args.tokens)
    np.save(os.path.join(work, "tokens.npy"), tokens)
    a = run_prefill(gguf, tokens[:check], args.threads, 0, 1, logits=True,
                    flash_attn=fa)["logits"]
    subprocess.run([sys.executable, os.path.join(mp.ROOT, "bench/model_prefill.py"),
                    "--torch", "--config", os.path.join(work, "config.json"),
                    "--weights", weights, "--tokens-file", os.path.join(work, "tokens.npy"),
                    "--threads", str(args.threads), "--check-tokens", str(check),
                    "--logits", os.path.join(work, "torch-logits.npy")], check=True)
    b = np.load(os.path.join(work, "torch-logits.npy")).reshape(check, -1)
    print("logits vs PyTorch, %d tokens: max |diff| / max |torch| = %.2e"
          % (check, np.abs(a - b).max() / np.abs(b).max()))
    r = run_prefill(gguf, tokens, args.threads, args.passes, 1, flash_attn=fa)
    print("llama.cpp: %d layers, T=%d, %d threads: %.1f tokens/s, peak RSS %.0f MB, "
          "passes %s s" % (args.layers, args.tokens, args.threads, r["tokens_per_s"],
                           r["peak_rss_mb"], r["pass_s"]))


if __name__ == "__main__":
    main()
