# ember_project_options(target): the flags every target of this project builds with.
# Warnings are errors here; they are not part of ember::ember's usage requirements, so a
# consumer's own flags are left alone.
function(ember_project_options target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Werror>
    $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror>)
  if(EMBER_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  target_link_libraries(${target} PRIVATE ember::ember)
endfunction()
