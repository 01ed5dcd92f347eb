#include "lib/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/err.h"

#define CHUNK (1 << 20) /* bytes per read/write */

int rk_fcopy(const char *src, const char *dst, mode_t mode, size_t max, bool sync)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? RK_ENOTFOUND : RK_EIO;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    char *buf = out >= 0 ? malloc(CHUNK) : NULL;
    int rc = buf ? 0 : RK_EIO;
    for (size_t done = 0; rc == 0 && done < max;) {
        ssize_t got = read(in, buf, max - done < CHUNK ? max - done : CHUNK);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno != EINTR)
                rc = RK_EIO;
            continue;
        }
        for (ssize_t off = 0; rc == 0 && off < got;) {
            ssize_t put = write(out, buf + off, (size_t)(got - off));
            if (put < 0 && errno != EINTR)
                rc = RK_EIO;
            off += put > 0 ? put : 0;
        }
        done += (size_t)got;
    }
    if (rc == 0 && sync && fsync(out) != 0)
        rc = RK_EIO;
    int e = errno;
    free(buf);
    if (out >= 0 && close(out) != 0 && rc == 0) {
        e = errno;
        rc = RK_EIO;
    }
    close(in);
    errno = e;
    return rc;
}

int rk_fsync_path(const char *path, bool dir)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}
