# frozen_string_literal: true

# Regenerates tests/fixtures/ruby/: runs schema.rb and `enqueue.rb all_shapes` against a
# temporary SQLite database (fixed clock and job ids: DJ_DETERMINISTIC=1), then writes each
# job's `handler` column byte for byte to <shape>.yml and the expected Ruby values to
# expected.json.
#
#   ruby tests/ruby/dump_fixtures.rb [OUTPUT_DIR]

require 'json'
require 'open3'
require 'tmpdir'
require 'fileutils'
require 'sqlite3'

here = __dir__
out_dir = File.expand_path(ARGV[0] || File.join(here, '..', 'fixtures', 'ruby'))

Dir.mktmpdir('dj-fixtures') do |tmp|
  db = File.join(tmp, 'fixtures.db')
  env = { 'DJ_DATABASE' => "sqlite3:#{db}", 'DJ_DETERMINISTIC' => '1', 'DJ_TIMEZONE' => 'utc',
          'DJ_TIME_ZONE' => 'UTC', 'TZ' => 'UTC', 'DJ_RECORD' => File.join(tmp, 'record.jsonl') }
  lines = []
  [%w[schema.rb], %w[enqueue.rb all_shapes]].each do |script, *args|
    stdout, stderr, status = Open3.capture3(env, RbConfig.ruby, File.join(here, script), *args)
    abort "#{script} failed (#{status}):\n#{stdout}\n#{stderr}" unless status.success?
    warn stderr.lines.grep(/"skipped"/).join unless stderr.empty?
    lines.concat(stdout.lines.select { |l| l.start_with?('{"id"') }.map { |l| JSON.parse(l) })
  end

  FileUtils.mkdir_p(out_dir)
  Dir.glob(File.join(out_dir, '*.yml')).each { |f| File.delete(f) }
  sqlite = SQLite3::Database.new(db)
  expected = {}
  lines.each do |line|
    handler = sqlite.get_first_value('SELECT handler FROM delayed_jobs WHERE id = ?', line['id'])
    File.binwrite(File.join(out_dir, "#{line['shape']}.yml"), handler.b)
    expected[line['shape']] = line['expected']
  end
  sqlite.close
  File.write(File.join(out_dir, 'expected.json'), JSON.pretty_generate(expected) + "\n")
  puts "wrote #{lines.size} handlers and expected.json to #{out_dir}"
end
