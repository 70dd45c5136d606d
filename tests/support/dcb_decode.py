"""Decodes an RFC 9842 dcb file with the reference brotli decoder (Google's C library, as
linked into the brotlicffi wheel), which Chromium also uses: the independent check of
staticd's dcb deltas, since Debian's `brotli` command (1.0.9) has no dictionary option.

Usage: python dcb_decode.py DICTIONARY < file.dcb > decoded

brotlicffi's own API offers no dictionaries, so the library's `BrotliDecoderAttachDictionary`
(exported by the same shared object) is called through ctypes.
"""
import ctypes
import glob
import hashlib
import os
import sys

import brotlicffi

RAW = 0  # BROTLI_SHARED_DICTIONARY_RAW
ERROR, SUCCESS, NEEDS_INPUT, NEEDS_OUTPUT = 0, 1, 2, 3


def load():
    so = glob.glob(os.path.join(os.path.dirname(brotlicffi.__file__), "_brotlicffi*.so"))[0]
    lib = ctypes.CDLL(so)
    p, sz = ctypes.c_void_p, ctypes.c_size_t
    lib.BrotliDecoderCreateInstance.restype = p
    lib.BrotliDecoderCreateInstance.argtypes = [p, p, p]
    lib.BrotliDecoderAttachDictionary.restype = ctypes.c_int
    lib.BrotliDecoderAttachDictionary.argtypes = [p, ctypes.c_int, sz, ctypes.c_char_p]
    lib.BrotliDecoderDecompressStream.restype = ctypes.c_int
    lib.BrotliDecoderDecompressStream.argtypes = [
        p, ctypes.POINTER(sz), ctypes.POINTER(p), ctypes.POINTER(sz), ctypes.POINTER(p), ctypes.POINTER(sz)
    ]
    lib.BrotliDecoderDestroyInstance.argtypes = [p]
    lib.BrotliDecoderVersion.restype = ctypes.c_uint32
    return lib


def decode(lib, stream, dictionary):
    state = lib.BrotliDecoderCreateInstance(None, None, None)
    dict_buf = ctypes.create_string_buffer(dictionary, len(dictionary))
    if not lib.BrotliDecoderAttachDictionary(state, RAW, len(dictionary), dict_buf):
        raise SystemExit("BrotliDecoderAttachDictionary refused the dictionary")
    in_buf = ctypes.create_string_buffer(stream, len(stream))
    avail_in = ctypes.c_size_t(len(stream))
    next_in = ctypes.c_void_p(ctypes.addressof(in_buf))
    out = bytearray()
    chunk = ctypes.create_string_buffer(1 << 16)
    while True:
        avail_out = ctypes.c_size_t(len(chunk))
        next_out = ctypes.c_void_p(ctypes.addressof(chunk))
        r = lib.BrotliDecoderDecompressStream(
            state, ctypes.byref(avail_in), ctypes.byref(next_in),
            ctypes.byref(avail_out), ctypes.byref(next_out), None)
        out += chunk.raw[: len(chunk) - avail_out.value]
        if r == SUCCESS:
            break
        if r != NEEDS_OUTPUT:
            raise SystemExit(f"brotli decoding failed (result {r})")
    lib.BrotliDecoderDestroyInstance(state)
    if avail_in.value:
        raise SystemExit(f"{avail_in.value} bytes after the brotli stream")
    return bytes(out)


def main():
    dictionary = open(sys.argv[1], "rb").read()
    data = sys.stdin.buffer.read()
    if data[:4] != b"\xffDCB":
        raise SystemExit("no dcb magic")
    if data[4:36] != hashlib.sha256(dictionary).digest():
        raise SystemExit("the dcb header names another dictionary")
    lib = load()
    v = lib.BrotliDecoderVersion()
    print(f"reference brotli decoder {v >> 24}.{(v >> 12) & 0xfff}.{v & 0xfff}", file=sys.stderr)
    sys.stdout.buffer.write(decode(lib, data[36:], dictionary))


if __name__ == "__main__":
    main()
