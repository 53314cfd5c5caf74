# embed_assets.cmake: turns the console's static files into C, at build time
# (cmake -DDIR=… -DOUT=… -P embed_assets.cmake). Each file of DIR becomes a
# byte array in OUT, listed in http_console_assets[] with its name and
# media type (shop/http/http.h); nothing generated is checked in.
file(GLOB names RELATIVE ${DIR} ${DIR}/*)
list(SORT names)
set(arrays "")
set(table "")
set(i 0)
foreach(name ${names})
  if(name MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(name MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  elseif(name MATCHES "\\.(js|mjs)$")
    set(type "text/javascript; charset=utf-8")
  elseif(name MATCHES "\\.svg$")
    set(type "image/svg+xml")
  else()
    message(FATAL_ERROR "embed_assets: no media type for ${name}")
  endif()
  file(READ ${DIR}/${name} hex HEX)
  string(LENGTH "${hex}" digits)
  math(EXPR size "${digits} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
  string(APPEND arrays "static const unsigned char asset_${i}[] = {\n${bytes}0x00};\n")
  string(APPEND table "    {\"${name}\", \"${type}\", asset_${i}, ${size}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE ${OUT}.tmp "/* Generated from shop/console/ by cmake/embed_assets.cmake: do not edit. */
#include \"http/http.h\"

${arrays}
const http_asset http_console_assets[] = {
${table}    {NULL, NULL, NULL, 0},
};
")
# Rewritten only when it changed, so that an unchanged console compiles nothing.
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
