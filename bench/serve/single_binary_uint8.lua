-- wrk script: one MNIST test image per KServe v2 infer request, UINT8 [1, 28, 28] raw pixels as binary tensor data.
-- Bodies: bench/serve/make_bodies.py; the shared code and its arguments: common.lua.
kind, images_per_request, api = "single_binary_uint8", 1, "kserve"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
