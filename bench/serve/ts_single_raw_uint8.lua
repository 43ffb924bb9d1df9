-- wrk script: one MNIST test image per TorchServe /predictions request, its 784 raw pixel bytes.
-- Bodies: bench/serve/make_bodies.py; the shared code and its arguments: common.lua.
kind, images_per_request, api = "ts_single_raw_uint8", 1, "torchserve"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
