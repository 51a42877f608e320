# node-gyp fallback build of the same addon that cmake-js builds from native/CMakeLists.txt.
# Sources come from native/sources.json, the one list both builds read.
{
  "targets": [
    {
      "target_name": "l4mux_addon",
      "sources": [
        "<!@(node -p \"const s=require('./native/sources.json');[...s.core,...s.engine,...s.agent,...s.pcap,...s.addon].map(f=>'native/'+f).join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('path').dirname(require.resolve('node-addon-api/package.json'))\")",
        "native/core",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14", "-std=c++17"],
      "cflags_cc": ["-std=c++20", "-fexceptions", "-Wall", "-Wextra", "-Werror", "-O3"],
      "libraries": ["-lpcap", "-lpthread"]
    }
  ]
}
