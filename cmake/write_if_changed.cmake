# write_if_changed(FILE TEXT): writes TEXT to FILE unless FILE already holds exactly it, so a
# generated source that did not change keeps its time stamp and nothing recompiles.
function(write_if_changed file text)
  set(old "")
  if(EXISTS "${file}")
    file(READ "${file}" old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE "${file}" "${text}")
  endif()
endfunction()
