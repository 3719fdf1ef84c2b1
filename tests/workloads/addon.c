/* A Node.js native addon that leaks: `leak(n)` keeps n blocks of 4 KiB. */
#include <node_api.h>
#include <stdlib.h>

static void *volatile kept[4096];
static int nkept;

__attribute__((noinline)) static void *addon_allocate(size_t size)
{
    return malloc(size);
}

static napi_value leak(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    int32_t count = 0;
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    napi_get_value_int32(env, argv[0], &count);
    for (int i = 0; i < count; i++)
        kept[nkept++ % 4096] = addon_allocate(4096);
    return NULL;
}

NAPI_MODULE_INIT()
{
    napi_value fn;
    napi_create_function(env, "leak", NAPI_AUTO_LENGTH, leak, NULL, &fn);
    napi_set_named_property(env, exports, "leak", fn);
    return exports;
}
