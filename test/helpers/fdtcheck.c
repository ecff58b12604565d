/*
 * fdtcheck: the libfdt oracle for kho's FDT validator tests.
 *
 * Reads blobs framed on stdin as [u32 little-endian length][bytes] and prints one line per blob:
 *   "<fdt_check_header result> <fdt_check_full(fdt, length) result> <read-write probe result>"
 * each as a libfdt error name (FDT_ERR_*), "OK" for 0, "CRASH" if libfdt faulted on the input, or
 * "HANG" if it did not return within 50 ms. Each blob is copied into a fresh 8-byte-aligned
 * buffer with 64 zero bytes of slack after it (so header reads of very short blobs are defined);
 * the length passed to fdt_check_full is the blob's own length. The read-write probe (only run when
 * fdt_check_full passed, else "-") is fdt_setprop_u32(copy, 0, "kho-probe", 1) on a copy: it fails
 * with FDT_ERR_BADLAYOUT when libfdt's rw functions refuse the block order, else typically NOSPACE.
 */
#include <libfdt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static sigjmp_buf escape;
static volatile sig_atomic_t why;

static void on_signal(int sig) {
  why = sig;
  siglongjmp(escape, 1);
}

static const char *name(int err) {
  switch (-err) {
  case 0: return "OK";
#define N(x) case x: return #x;
  N(FDT_ERR_NOTFOUND) N(FDT_ERR_EXISTS) N(FDT_ERR_NOSPACE) N(FDT_ERR_BADOFFSET)
  N(FDT_ERR_BADPATH) N(FDT_ERR_BADPHANDLE) N(FDT_ERR_BADSTATE) N(FDT_ERR_TRUNCATED)
  N(FDT_ERR_BADMAGIC) N(FDT_ERR_BADVERSION) N(FDT_ERR_BADSTRUCTURE) N(FDT_ERR_BADLAYOUT)
  N(FDT_ERR_INTERNAL) N(FDT_ERR_BADNCELLS) N(FDT_ERR_BADVALUE) N(FDT_ERR_BADOVERLAY)
  N(FDT_ERR_NOPHANDLES) N(FDT_ERR_BADFLAGS) N(FDT_ERR_ALIGNMENT)
#undef N
  default: return "UNKNOWN";
  }
}

static int read_all(void *dst, size_t n) {
  return fread(dst, 1, n, stdin) == n;
}

/* Runs one check under the fault/hang guard; returns its printable result. */
static const char *guarded(int which, void *fdt, size_t len) {
  static char buf[32];
  struct itimerval t = {{0, 0}, {0, 50000}}, off = {{0, 0}, {0, 0}};
  why = 0;
  if (sigsetjmp(escape, 1)) {
    setitimer(ITIMER_REAL, &off, NULL);
    return why == SIGALRM ? "HANG" : "CRASH";
  }
  setitimer(ITIMER_REAL, &t, NULL);
  int r = which == 0   ? fdt_check_header(fdt)
          : which == 1 ? fdt_check_full(fdt, len)
                       : fdt_setprop_u32(fdt, 0, "kho-probe", 1);
  setitimer(ITIMER_REAL, &off, NULL);
  snprintf(buf, sizeof buf, "%s", name(r));
  return buf;
}

int main(void) {
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGALRM, on_signal);
  unsigned char lenb[4];
  while (read_all(lenb, 4)) {
    uint32_t len = lenb[0] | lenb[1] << 8 | lenb[2] << 16 | (uint32_t)lenb[3] << 24;
    unsigned char *fdt = calloc(1, (size_t)len + 64);
    if (!fdt || (len && !read_all(fdt, len))) {
      fprintf(stderr, "fdtcheck: short input\n");
      return 2;
    }
    const char *h = guarded(0, fdt, len);
    char hs[32];
    snprintf(hs, sizeof hs, "%s", h);
    const char *f = guarded(1, fdt, len);
    char fs[32];
    snprintf(fs, sizeof fs, "%s", f);
    const char *rw = "-";
    if (strcmp(fs, "OK") == 0) rw = guarded(2, fdt, len); /* last: it may write into the buffer */
    printf("%s %s %s\n", hs, fs, rw);
    free(fdt);
  }
  return 0;
}
