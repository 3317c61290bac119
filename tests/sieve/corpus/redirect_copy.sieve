require "copy";
redirect :copy "archive@backup.example";
