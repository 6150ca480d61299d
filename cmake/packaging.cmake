# packaging.cmake -- installing ringcast like a system service: the shared
# library, the man pages, the systemd unit, the config file, and their tests.
#
# Included once, at the end of CMakeLists.txt. It expects from it:
#   RC_LIB_SOURCES  the library's sources, or the object files of its layer
#                   libraries ($<TARGET_OBJECTS:...>, which must then be built
#                   with CMAKE_POSITION_INDEPENDENT_CODE ON)
#   ringcast        the static library target (its include directories and
#                   compile definitions are reused for the shared one)
#   ringcastd, ringcast-feed, ringcast-bench   the programs (the last two optional)
# debian/ builds with `dh --buildsystem=cmake` on top of these install rules.

include(GNUInstallDirs)
find_package(Python3 REQUIRED COMPONENTS Interpreter)

# The Debian changelog names the package version; it must be the project's.
if(EXISTS ${PROJECT_SOURCE_DIR}/debian/changelog)
  file(STRINGS ${PROJECT_SOURCE_DIR}/debian/changelog RC_DEB_HEAD LIMIT_COUNT 1)
  string(REGEX MATCH "^ringcast \\(([^)]+)\\)" RC_DEB_MATCH "${RC_DEB_HEAD}")
  if(NOT CMAKE_MATCH_1 STREQUAL PROJECT_VERSION)
    message(FATAL_ERROR "debian/changelog has version '${CMAKE_MATCH_1}' but project() says "
                        "'${PROJECT_VERSION}': add a changelog entry (dch -v ${PROJECT_VERSION})")
  endif()
endif()

# libringcast.so.0: the same code as the static archive, exporting only the
# public API, so internal functions cannot become ABI by accident. Sources are
# compiled with -fvisibility=hidden and ringcast_export.h force-included (what
# ringcast.h declares stays visible); the version script (libringcast.map)
# exports ringcast_* and nothing else, also for prebuilt object files.
# -z defs: the library must not depend on symbols its users happen to define.
string(FIND "${RC_LIB_SOURCES}" "TARGET_OBJECTS" RC_LIB_FROM_OBJECTS)
if(NOT RC_LIB_FROM_OBJECTS EQUAL -1 AND NOT CMAKE_POSITION_INDEPENDENT_CODE)
  message(FATAL_ERROR "the shared libringcast is linked from object files: set "
                      "CMAKE_POSITION_INDEPENDENT_CODE ON before the library targets")
endif()
set(RC_VERSION_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/libringcast.map)
add_library(ringcast_shared SHARED ${RC_LIB_SOURCES})
set_target_properties(ringcast_shared PROPERTIES
  OUTPUT_NAME ringcast VERSION ${PROJECT_VERSION} SOVERSION 0
  C_VISIBILITY_PRESET hidden LINK_DEPENDS ${RC_VERSION_SCRIPT})
target_include_directories(ringcast_shared PRIVATE
  $<TARGET_PROPERTY:ringcast,INTERFACE_INCLUDE_DIRECTORIES>)
target_compile_definitions(ringcast_shared PRIVATE
  $<TARGET_PROPERTY:ringcast,INTERFACE_COMPILE_DEFINITIONS>)
target_compile_options(ringcast_shared PRIVATE -include ${CMAKE_CURRENT_LIST_DIR}/ringcast_export.h)
target_link_libraries(ringcast_shared PRIVATE PkgConfig::URING PkgConfig::CRYPTO Threads::Threads)
target_link_options(ringcast_shared PRIVATE -Wl,--version-script=${RC_VERSION_SCRIPT} -Wl,--as-needed)
if(NOT RINGCAST_SANITIZE AND NOT RINGCAST_FUZZ)
  # Sanitized builds leave the sanitizer runtime to the executable (clang does).
  target_link_options(ringcast_shared PRIVATE -Wl,-z,defs)
endif()
install(TARGETS ringcast_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

set(RC_PROGRAMS ringcastd)
foreach(prog ringcast-feed ringcast-bench)
  if(TARGET ${prog})
    list(APPEND RC_PROGRAMS ${prog})
  endif()
endforeach()
if(TARGET ringcast-bench)
  install(TARGETS ringcast-bench RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# Man pages: man/<page>.md -> roff by scripts/mkman.py, which pulls each
# program's --help and the settings of docs/config.md in, so they cannot drift.
set(RC_MAN_PAGES ringcastd.8 ringcast.conf.5)
foreach(prog ringcast-feed ringcast-bench)
  if(TARGET ${prog})
    list(APPEND RC_MAN_PAGES ${prog}.1)
  endif()
endforeach()
set(RC_MAN_EXES "")
foreach(prog ${RC_PROGRAMS})
  list(APPEND RC_MAN_EXES --exe ${prog}=$<TARGET_FILE:${prog}>)
endforeach()
file(GLOB RC_DOCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
set(RC_MAN_OUTPUTS "")
foreach(page ${RC_MAN_PAGES})
  string(REGEX MATCH "[0-9]$" section ${page})
  set(out ${PROJECT_BINARY_DIR}/man/${page})
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/mkman.py
            ${PROJECT_SOURCE_DIR}/man/${page}.md ${out} --root ${PROJECT_SOURCE_DIR}
            --version ${PROJECT_VERSION} ${RC_MAN_EXES}
    DEPENDS ${PROJECT_SOURCE_DIR}/man/${page}.md ${PROJECT_SOURCE_DIR}/scripts/mkman.py
            ${RC_DOCS} ${RC_PROGRAMS}
    COMMENT "Generating man page ${page}" VERBATIM)
  list(APPEND RC_MAN_OUTPUTS ${out})
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()
add_custom_target(ringcast-man ALL DEPENDS ${RC_MAN_OUTPUTS})

# The systemd unit and the config file. The unit names the installed paths, so
# it is configured with them (make install PREFIX=... reconfigures).
set(RINGCAST_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd unit is installed, relative to the prefix or absolute (Debian: /lib/systemd/system)")
configure_file(${PROJECT_SOURCE_DIR}/packaging/ringcast.service.in
               ${PROJECT_BINARY_DIR}/ringcast.service @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ringcast.service DESTINATION ${RINGCAST_SYSTEMD_UNITDIR})
install(FILES ${PROJECT_SOURCE_DIR}/ringcast.conf
        DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/ringcast)

# Everything the packages ship, and nothing else (no tests, examples or fuzzers):
# debian/rules builds this target and installs without the `all` dependency.
add_custom_target(ringcast-dist DEPENDS ringcast ringcast_shared ringcast-man ${RC_PROGRAMS})

# Tests, registered once (not per backend): the man pages against --help and
# docs/config.md, and the Debian packages end to end (builds, installs and
# purges them on this machine: root only, and serial). Same interpreter as the
# integration tests (Debian's, which has python3-seccomp).
if(NOT RC_PYTHON)
  set(RC_PYTHON ${Python3_EXECUTABLE})
endif()
add_test(NAME package.man
         COMMAND ${RC_PYTHON} ${PROJECT_SOURCE_DIR}/tests/package/test_man.py)
set_tests_properties(package.man PROPERTIES LABELS package TIMEOUT 60 SKIP_RETURN_CODE 77
  ENVIRONMENT "RINGCAST_MAN_DIR=${PROJECT_BINARY_DIR}/man;RINGCASTD=$<TARGET_FILE:ringcastd>;RINGCAST_SRC=${PROJECT_SOURCE_DIR}")
add_test(NAME package.deb
         COMMAND ${RC_PYTHON} ${PROJECT_SOURCE_DIR}/tests/package/test_package.py)
set_tests_properties(package.deb PROPERTIES LABELS package TIMEOUT 900 SKIP_RETURN_CODE 77
  RUN_SERIAL TRUE
  ENVIRONMENT "RINGCAST_SRC=${PROJECT_SOURCE_DIR};RINGCAST_DEB_DIR=${PROJECT_BINARY_DIR}/deb;RINGCAST_SANITIZE=$<BOOL:${RINGCAST_SANITIZE}>")
