build-asan/src/core/payload.o: src/core/payload.c src/core/payload.h \
 src/core/../buf.h src/core/../jsonw.h src/core/../buf.h \
 src/core/../limits.h src/core/../util.h src/core/money.h
src/core/payload.h:
src/core/../buf.h:
src/core/../jsonw.h:
src/core/../buf.h:
src/core/../limits.h:
src/core/../util.h:
src/core/money.h:
