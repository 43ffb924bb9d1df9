-- wrk script: 64 MNIST test images per KServe v2 infer request, FP32 [64, 1, 28, 28] as binary tensor data.
-- Bodies: bench/serve/make_bodies.py; the shared code and its arguments: common.lua.
kind, images_per_request, api = "batch64_binary_fp32", 64, "kserve"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
