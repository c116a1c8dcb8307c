build-asan/src/core/runner.o: src/core/runner.c src/core/runner.h \
 src/core/delivery.h src/core/payload.h src/core/../buf.h \
 src/core/../http/server.h src/core/../http/router.h src/core/../jsonw.h \
 src/core/../buf.h src/core/../util.h src/core/deadline.h \
 src/core/money.h
src/core/runner.h:
src/core/delivery.h:
src/core/payload.h:
src/core/../buf.h:
src/core/../http/server.h:
src/core/../http/router.h:
src/core/../jsonw.h:
src/core/../buf.h:
src/core/../util.h:
src/core/deadline.h:
src/core/money.h:
