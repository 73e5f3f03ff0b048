// Clang thread-safety annotations (no-ops on other compilers).
//
// The clang CI build compiles with -Wthread-safety -Werror, so lock discipline written with these
// macros is checked by the compiler rather than by review.
#pragma once

#if defined(__clang__)
#define XI_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define XI_THREAD_ANNOTATION(x)
#endif

#define XI_CAPABILITY(x) XI_THREAD_ANNOTATION(capability(x))
#define XI_SCOPED_CAPABILITY XI_THREAD_ANNOTATION(scoped_lockable)
#define XI_GUARDED_BY(x) XI_THREAD_ANNOTATION(guarded_by(x))
#define XI_REQUIRES(...) XI_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define XI_ACQUIRE(...) XI_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define XI_RELEASE(...) XI_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define XI_EXCLUDES(...) XI_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define XI_NO_THREAD_SAFETY_ANALYSIS XI_THREAD_ANNOTATION(no_thread_safety_analysis)
