-- scripts/bench.d/media.lua -- wrk's side of the images workload
-- (scripts/bench --only media; scripts/bench.d/media.sh runs it).  The load
-- generator only: what it sends is told by the environment.
--
--   MEDIA_MODE=upload  POST /v1/media, every body distinct: the template
--                      image MEDIA_FILE (a PNG signature and IHDR, 32 tag
--                      bytes, random padding) with the tag replaced by
--                      MEDIA_NONCE, the thread and a counter, so that every
--                      upload is new content that the gateway stores
--   MEDIA_MODE=same    POST /v1/media of MEDIA_FILE as it is, every time
--                      (the same user's same image again)
--   MEDIA_MODE=get     GET of the paths in MEDIA_PATHS (one a line), each
--                      thread cycling through them from its own offset
--   MEDIA_TOKEN        a bearer token to send (uploads; downloads by token)
--
-- No response() callback: wrk would hand every body to Lua.

local threads = 0

function setup(thread)
    thread:set("tid", threads)
    threads = threads + 1
end

local mode, head, tail, nonce, paths, npaths, i, n, hdrs, prefix

local function slurp(name)
    local f = assert(io.open(name, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

function init(args)
    mode = os.getenv("MEDIA_MODE") or "get"
    hdrs = {}
    local token = os.getenv("MEDIA_TOKEN")
    if token and token ~= "" then
        hdrs["Authorization"] = "Bearer " .. token
    end
    n = 0

    if mode == "upload" or mode == "same" then
        local img = slurp(os.getenv("MEDIA_FILE"))
        hdrs["Content-Type"] = "image/png"
        if mode == "same" then
            wrk.method = "POST"
            wrk.path = "/v1/media"
            wrk.body = img
            -- into wrk.headers, which holds the Host header
            for k, v in pairs(hdrs) do
                wrk.headers[k] = v
            end
            return
        end
        -- 8 signature + 25 IHDR bytes, then the 32 bytes of the tag; the
        -- request line and headers made once (wrk.format with a body
        -- of the image's length), so that each request is one string
        -- made (a string of 1 MiB costs its generator more than nginx)
        head = img:sub(1, 33)
        tail = img:sub(66)
        local req = wrk.format("POST", "/v1/media", hdrs, img)
        prefix = req:sub(1, #req - #img) .. head
        nonce = (os.getenv("MEDIA_NONCE") or "") .. "-" .. tid
        return
    end

    paths = {}
    for line in io.lines(os.getenv("MEDIA_PATHS")) do
        if line ~= "" then
            paths[#paths + 1] = line
        end
    end
    npaths = #paths
    i = (tid * 7) % npaths
end

-- MEDIA_MODE=same: no request(), so that wrk sends one prepared request
if os.getenv("MEDIA_MODE") ~= "same" then
    function request()
        if mode == "upload" then
            n = n + 1
            local tag = string.format("%-32s", nonce .. "-" .. n):sub(1, 32)
            return prefix .. tag .. tail
        end
        i = i % npaths + 1
        return wrk.format("GET", paths[i], hdrs)
    end
end
