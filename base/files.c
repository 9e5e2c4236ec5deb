/* files.c — error messages naming a file, atomic writes, mkdir -p and the kinds of file (base.h). */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fail_at(char *err, size_t errlen, const char *what, const char *fmt, ...) {
    if (!err || errlen == 0) return -1;
    int k = snprintf(err, errlen, "%s: ", what ? what : "(null)");
    if (k < 0) {
        err[0] = 0;
        return -1;
    }
    if ((size_t)k < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* fsync the folder holding path, so the rename is durable. */
static int fsync_dir(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    /* some filesystems cannot fsync a folder; that is not a failure to save */
    return rc != 0 && e != EINVAL && e != EROFS ? -1 : 0;
}

int write_atomic(const char *path, const Piece *pieces, int n, char *err, size_t errlen) {
    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    const char *stage = "create";
    int e = 0;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) goto fail;
    stage = "write";
    for (int i = 0; i < n; i++)
        if (pieces[i].len && fwrite(pieces[i].data, 1, pieces[i].len, fp) != pieces[i].len) goto fail;
    stage = "flush";
    if (fflush(fp) != 0) goto fail;
    stage = "fsync";
    if (fsync(fileno(fp)) != 0) goto fail;
    stage = "close";
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) goto fail;
    stage = "rename";
    if (rename(tmp, path) != 0) goto fail;
    free(tmp);
    if (fsync_dir(path) != 0) return fail_at(err, errlen, path, "written, but fsync of its folder failed: %s", strerror(errno));
    return 0;
fail:
    e = errno ? errno : EIO;
    if (fp) fclose(fp);
    fail_at(err, errlen, path, "cannot write (%s %s): %s", stage, tmp, strerror(e));
    unlink(tmp);
    free(tmp);
    return -1;
}

int mkdir_p(const char *path, char *err, size_t errlen) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return fail_at(err, errlen, path, "cannot create: %s", strerror(ENAMETOOLONG));
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fail_at(err, errlen, buf, "cannot create: %s", strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fail_at(err, errlen, path, "cannot create: %s", strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail_at(err, errlen, path, "cannot create: %s", strerror(ENOTDIR));
    return 0;
}

const char *file_kind(unsigned int mode) {
    switch (mode & S_IFMT) {
    case S_IFDIR: return "a folder";
    case S_IFIFO: return "a FIFO";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    case S_IFLNK: return "a symbolic link";
    case S_IFREG: return "a regular file";
    default: return "a file of unknown kind";
    }
}
