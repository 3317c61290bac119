# fileinto without require "fileinto".
fileinto "A";
