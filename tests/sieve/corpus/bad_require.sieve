# An unknown extension is a compile error for both.
require "x-unknown-extension";
keep;
