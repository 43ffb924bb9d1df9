-- wrk script: one MNIST test image per TorchServe /predictions request, {"data": [784 floats]}.
-- Bodies: bench/serve/make_bodies.py; the shared code and its arguments: common.lua.
kind, images_per_request, api = "ts_single_json_fp32", 1, "torchserve"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
