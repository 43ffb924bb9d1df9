-- wrk script: one MNIST test image per KServe v2 infer request, FP32 [1, 1, 28, 28] as JSON.
-- Bodies: bench/serve/make_bodies.py; the shared code and its arguments: common.lua.
kind, images_per_request, api = "single_json_fp32", 1, "kserve"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
