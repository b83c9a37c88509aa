# SPDX-License-Identifier: Apache-2.0
# Turn a text file into a C array: -DIN=file -DOUT=file.c -DSYM=name
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "#include <stddef.h>\nconst char ${SYM}_data[] = {${body} 0};\nconst size_t ${SYM}_size = ${size};\n")
