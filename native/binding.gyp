{
  "targets": [
    {
      "target_name": "tlstap_native",
      "sources": [
        "src/addon.cc", "src/batch_pool.cc", "src/bpf_session.cc", "src/courier.cc", "src/record_feed.cc", "src/layout.cc", "src/errors.cc",
        "src/static_link.c", "core/tlstap_core.c", "core/core_links.c", "core/core_log.c", "core/spill.c"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../bpf", "core"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags": ["-ffile-prefix-map=<(module_root_dir)=."],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      # libbpf, libelf and zlib linked in (the archives of the target architecture, found by its
      # compiler: $CC), their symbols kept local: no runtime dependency on the distribution's libbpf.
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "libraries": [
        "<!(${CC:-cc} -print-file-name=libbpf.a)",
        "<!(${CC:-cc} -print-file-name=libelf.a)",
        "<!(${CC:-cc} -print-file-name=libz.a)"
      ]
    }
  ]
}
