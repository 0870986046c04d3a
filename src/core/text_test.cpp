#include "core/text.h"

#include <gtest/gtest.h>

namespace gantry::core {
namespace {

TEST(Text, ControlBytesAreFoundAndShownAsQuestionMarks) {
  EXPECT_FALSE(has_control("So1ana ünïcode ~"));
  EXPECT_TRUE(has_control(std::string_view("a\0b", 3)));
  EXPECT_TRUE(has_control("a\x7f"));
  EXPECT_TRUE(has_control("\x1b[2J"));
  EXPECT_EQ(printable("a\x1b[2Jb\tc\x7f"), "a?[2Jb?c?");
  EXPECT_EQ(printable("ünïcode"), "ünïcode");  // bytes >= 0x80 are text, not controls
}

TEST(Text, OneLineJoinsLinesAndDropsTheTrailingBreak) {
  EXPECT_EQ(one_line("install exited 1: E: unable to locate\r\nline two\nline three\n\n"),
            "install exited 1: E: unable to locate | line two | line three");
  EXPECT_EQ(one_line("bell\a and \x1b[31mred"), "bell? and ?[31mred");
  EXPECT_EQ(one_line(""), "");
}

}  // namespace
}  // namespace gantry::core
