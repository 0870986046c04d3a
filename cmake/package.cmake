# `make package` (a release build, then cpack -B build/package): CPack builds
# build/package/gantry_<version>_amd64.deb. What it holds, and where (Debian's layout):
#   /usr/bin/gantry                          the binary, stripped
#   /lib/systemd/system/gantry@.service      one instance per role (docs/operations.md)
#   /etc/gantry/gantry.toml                  deploy/gantry.example.toml, a conffile
#   /usr/share/gantry/{openapi,prometheus,grafana}/   API documents, alert rules, dashboards
#   /usr/share/doc/gantry/                   README, docs/*.md, copyright, changelog
#   /usr/share/man/man1/gantry.1.gz          made by help2man from --help
# Dependencies are computed from the shared libraries by dpkg-shlibdeps. The maintainer scripts
# (deploy/debian/postinst, postrm) only daemon-reload: no role is enabled by installing. tests/package_test.cpp
# builds it, runs lintian on it and the extracted binary.
include(GNUInstallDirs)
install(TARGETS gantry RUNTIME DESTINATION bin)
install(FILES deploy/systemd/gantry@.service DESTINATION /lib/systemd/system)
install(FILES deploy/gantry.example.toml DESTINATION /etc/gantry RENAME gantry.toml)
install(DIRECTORY api/ DESTINATION share/gantry/openapi FILES_MATCHING PATTERN "*.openapi.json"
        PATTERN node_modules EXCLUDE)
install(DIRECTORY deploy/prometheus/ DESTINATION share/gantry/prometheus)
install(DIRECTORY deploy/grafana/ DESTINATION share/gantry/grafana)
install(FILES README.md deploy/debian/copyright DESTINATION share/doc/gantry)
file(GLOB GANTRY_DOCS CONFIGURE_DEPENDS docs/*.md)
install(FILES ${GANTRY_DOCS} DESTINATION share/doc/gantry)
# Debian wants the changelog gzip -9n compressed (no name, no time stamp: reproducible).
set(CHANGELOG_GZ ${CMAKE_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${CHANGELOG_GZ}
  COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/deploy/debian/changelog > ${CHANGELOG_GZ}
  DEPENDS ${PROJECT_SOURCE_DIR}/deploy/debian/changelog VERBATIM)
add_custom_target(gantry_changelog ALL DEPENDS ${CHANGELOG_GZ})
install(FILES ${CHANGELOG_GZ} DESTINATION share/doc/gantry)
# gantry(1), from the binary's own --help and --version: what the man page says cannot drift.
set(MANPAGE_GZ ${CMAKE_BINARY_DIR}/gantry.1.gz)
add_custom_command(OUTPUT ${MANPAGE_GZ}
  COMMAND help2man --no-info --no-discard-stderr
          --name "operations platform: fleet, telemetry, orchestrator, trades, clusters" $<TARGET_FILE:gantry>
          | gzip -9n > ${MANPAGE_GZ}
  DEPENDS gantry VERBATIM)
add_custom_target(gantry_manpage ALL DEPENDS ${MANPAGE_GZ})
install(FILES ${MANPAGE_GZ} DESTINATION share/man/man1)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME gantry)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "gantry developers <gantry@lists.gantry.dev>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "operations platform: fleet, telemetry, orchestrator, trades, clusters")
set(CPACK_PACKAGE_DESCRIPTION "One binary running five operational systems on a shared core:
Fleet (versioned configuration for agents), Telemetry (network-quality
probes, ingest, per-minute aggregates), Orchestrator (database changes
become scan jobs), Trades (rolling-window statistics) and Clusters.
Each role runs as the systemd unit gantry@<role>.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/gantry-platform/gantry")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
